// The engine's KV budget (--max_kv_tokens): admission by what a request needs now, growth block
// by block (--kv_block_tokens) before each decode step, and preemption by recompute of the
// youngest admitted request when the budget is spent. Scheduler thread only.
#include <algorithm>

#include "common/base/logging.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/engine_impl.h"

namespace icae::decoder {

int64_t Engine::Impl::AdmissionNeed(const Request& request, bool prefix_hit) const {
  const PreparedRequest& p = request.prepared;
  // Its context and what it had generated before a preemption, plus room for the next position;
  // never more than it can ever use.
  const int64_t now = p.positions() + request.resume_ids + 1;
  const int64_t block = options_.kv_block_tokens;
  return KvPositionsNeeded(p, std::min(p.reserved_positions(), RoundUpToBlock(now, block)),
                           prefix_hit, block);
}

void Engine::Impl::Preempt(Request& request) {
  StopBuilding(request);
  request.awaiting_prefix = false;
  request.prefix.reset();
  request.prefilled = 0;
  request.prepared.input = PromptInput();
  if (request.sequence != nullptr) {
    const std::vector<int>& ids = request.sequence->ids();
    request.resuming = !ids.empty();
    request.resume_ids = request.resuming ? static_cast<int64_t>(ids.size()) - 1 : 0;
    request.sequence->cache() = model_.transformer().NewCache(kv_pool_, 0);  // Frees its KV.
  }
  if (observer_ != nullptr) observer_->OnPreempted();
  absl::MutexLock lock(&mu_);
  kv_used_ -= request.kv_reserved;
  request.kv_reserved = 0;
  request.reserved_prefix = false;
  request.in_batch = false;
  --running_;
}

void Engine::Impl::MakeRoom(std::vector<RequestPtr>& running,
                            std::deque<RequestPtr>& prefilling) {
  const int64_t block = options_.kv_block_tokens;
  std::vector<RequestPtr> preempted;
  // The youngest admitted request still holding KV: the one to preempt.
  auto youngest = [&]() -> RequestPtr* {
    RequestPtr* pick = nullptr;
    auto consider = [&](RequestPtr& r) {
      if (r != nullptr && (pick == nullptr || r->admit_order > (*pick)->admit_order)) pick = &r;
    };
    for (RequestPtr& r : running) consider(r);
    for (RequestPtr& r : prefilling) consider(r);
    return pick;
  };
  for (RequestPtr& slot : running) {  // Oldest first: they keep going.
    if (slot == nullptr) continue;
    Request& request = *slot;
    KVCache& cache = request.sequence->cache();
    const int64_t capacity = cache.capacity();
    if (cache.length() + 1 - cache.prefix_length() <= capacity) continue;
    const int64_t most = request.prepared.reserved_positions() - cache.prefix_length();
    // Whole blocks (the capacity is too).
    const int64_t grown =
        RoundUpToBlock(std::min(most, capacity + std::max(block, capacity / 4)), block);
    const int64_t extra = grown - capacity;
    while (true) {
      bool fits, evicted = false;
      {
        absl::MutexLock lock(&mu_);
        while (KvTokensUsedLocked() + extra > kv_limit_ &&
               prefix_cache_.EvictIdle()) {
          evicted = true;
        }
        fits = KvTokensUsedLocked() + extra <= kv_limit_;
        if (fits) {
          kv_used_ += extra;
          request.kv_reserved += extra;
        }
        PublishStateLocked();
      }
      if (evicted) PublishPrefixCache();
      if (fits) {
        absl::Status grow = CatchTorch("growing the KV cache", [&]() -> absl::Status {
          cache.SetCapacity(grown);
          request.kv_cache_bytes = cache.bytes();
          return absl::OkStatus();
        });
        if (!grow.ok()) Finish(std::move(slot), grow);
        break;
      }
      RequestPtr* victim = youngest();  // At worst this request itself.
      const bool self = victim->get() == &request;
      Preempt(**victim);
      preempted.push_back(std::move(*victim));
      if (self) break;
    }
  }
  running.erase(std::remove(running.begin(), running.end(), nullptr), running.end());
  prefilling.erase(std::remove(prefilling.begin(), prefilling.end(), nullptr), prefilling.end());
  if (preempted.empty()) return;
  // Back to the front of the queue, the oldest first, ahead of every request never admitted.
  std::sort(preempted.begin(), preempted.end(),
            [](const RequestPtr& a, const RequestPtr& b) { return a->admit_order > b->admit_order; });
  absl::MutexLock lock(&mu_);
  for (RequestPtr& request : preempted) waiting_.push_front(std::move(request));
  PublishStateLocked();
}

}  // namespace icae::decoder
