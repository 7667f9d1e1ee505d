#include "tools/train/optimizer.h"

#include <cmath>

namespace icae::train {

AdamW::AdamW(std::vector<at::Tensor> params, AdamWConfig config)
    : params_(std::move(params)), config_(config) {
  for (const at::Tensor& p : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
}

void AdamW::Step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double correction1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double correction2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    const double lr_i = i < scales_.size() ? lr * scales_[i] : lr;
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    if (config_.weight_decay > 0 && p.dim() >= 2) p.mul_(1.0 - lr_i * config_.weight_decay);
    at::Tensor denom = (v_[i] / correction2).sqrt_().add_(config_.eps);
    p.addcdiv_(m_[i], denom, -lr_i / correction1);
  }
}

void AdamW::ZeroGrad() {
  for (at::Tensor& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

std::vector<at::Tensor> AdamW::State() const {
  std::vector<at::Tensor> state = m_;
  state.insert(state.end(), v_.begin(), v_.end());
  return state;
}

void AdamW::LoadState(const std::vector<at::Tensor>& state, int64_t step) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    m_[i].copy_(state[i]);
    v_[i].copy_(state[params_.size() + i]);
  }
  step_ = step;
}

double LearningRate(int64_t step, int64_t total, int64_t warmup, double peak, double min_ratio) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / warmup;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak * (min_ratio + (1.0 - min_ratio) * cosine);
}

double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  double sum = 0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) sum += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sum);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const at::Tensor& p : params) {
      if (p.grad().defined()) p.grad().mul_(scale);
    }
  }
  return norm;
}

}  // namespace icae::train
