#include "tools/train/progress.h"

#include "absl/strings/str_format.h"

namespace icae::train {

Progress::Progress(FILE* out, bool terminal, int64_t total_steps, int log_every)
    : out_(out), terminal_(terminal), total_(total_steps), log_every_(log_every) {
  Restart(0);
}

void Progress::Restart(int64_t first_step) {
  first_step_ = first_step;
  tokens_ = 0;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::seconds(1);
}

double Progress::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::TokensPerSecond() const {
  const double s = ElapsedSeconds();
  return s > 0 ? tokens_ / s : 0;
}

std::string Progress::FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

void Progress::Step(int64_t step, double loss, double lr, int64_t tokens) {
  tokens_ += tokens;
  loss_avg_ += loss;
  ++loss_count_;
  const auto now = std::chrono::steady_clock::now();
  const bool last = step == total_;
  if (terminal_) {
    if (!last && now - last_draw_ < std::chrono::milliseconds(200)) return;
  } else if (step % log_every_ != 0 && !last) {
    return;
  }
  last_draw_ = now;
  const double elapsed = ElapsedSeconds();
  const double per_step = elapsed / std::max<int64_t>(1, step - first_step_);
  const std::string line =
      absl::StrFormat("step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  elapsed %s  ETA %s", step,
                      total_, loss_avg_ / loss_count_, lr, TokensPerSecond(),
                      FormatDuration(elapsed), FormatDuration(per_step * (total_ - step)));
  loss_avg_ = 0;
  loss_count_ = 0;
  if (terminal_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    line_open_ = true;
    if (last) {
      std::fputc('\n', out_);
      line_open_ = false;
    }
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void Progress::Event(const std::string& line) {
  if (line_open_) std::fprintf(out_, "\r\033[K");
  line_open_ = false;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace icae::train
