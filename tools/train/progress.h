// The progress line: "step 120/4000  loss 4.1234  lr 3.00e-04  1530 tok/s  ETA 41m12s". On a
// terminal it redraws in place (at most 5 times a second); otherwise (a log file) it prints a
// plain line every `log_every` steps. Events (validation, checkpoints) always print a full line.
// Not thread-safe.
#ifndef ICAE_TOOLS_TRAIN_PROGRESS_H_
#define ICAE_TOOLS_TRAIN_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace icae::train {

class Progress {
 public:
  // `out` is where lines go (stderr in the tool); `terminal` chooses redraw vs plain lines.
  Progress(FILE* out, bool terminal, int64_t total_steps, int log_every);

  // After step `step` (1-based) with its loss, learning rate and the tokens it processed.
  void Step(int64_t step, double loss, double lr, int64_t tokens);
  // A full line (clears a pending redraw first).
  void Event(const std::string& line);
  // Tokens per second since Start (or the last Restart).
  double TokensPerSecond() const;
  double ElapsedSeconds() const;
  // Restarts the clock (after a resume, so rates cover this process only).
  void Restart(int64_t first_step);

  static std::string FormatDuration(double seconds);

 private:
  FILE* out_;
  bool terminal_;
  int64_t total_;
  int log_every_;
  int64_t first_step_ = 0;
  int64_t tokens_ = 0;
  double loss_avg_ = 0;  // Mean loss since the last printed line.
  int loss_count_ = 0;
  bool line_open_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_PROGRESS_H_
