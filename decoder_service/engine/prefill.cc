// Prefill of admitted requests (chunked) and slot-prefix reuse: a request's context prefix is
// attached from the prefix cache, built by this request and then shared, or awaited while another
// request builds it. Scheduler thread only.
#include <algorithm>
#include <utility>

#include "common/base/logging.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/engine_impl.h"

namespace icae::decoder {

void Engine::Impl::StartPrefill(Request& request) {
  const bool first_admission = request.admitted == absl::Time();
  request.prefill_done = false;
  if (first_admission) request.admitted = absl::Now();
  const PreparedRequest& p = request.prepared;
  if (observer_ != nullptr && first_admission) {
    observer_->OnAdmitted(Seconds(request.admitted - request.arrival), p.prompt_tokens,
                          p.slot_tokens, p.uncompressed_context_tokens);
  }
  const Transformer& transformer = model_.transformer();
  const ModelConfig& config = model_.config();
  absl::Status status = CatchTorch("prefill", [&]() -> absl::Status {
    // Embeddings exist only from admission on (a waiting request holds ids and slot tensors).
    RETURN_IF_ERROR(BuildEmbeds(model_, request.prepared));
    if (request.resuming && request.resume_ids > 0) {
      // After a preemption: the context, then every generated id but the last (still to feed).
      const std::vector<int>& ids = request.sequence->ids();
      std::vector<int64_t> replay(ids.begin(), ids.begin() + request.resume_ids);
      at::Tensor& embeds = request.prepared.input.embeds;
      embeds = at::cat(
          {embeds, transformer.Embed(at::tensor(replay, at::TensorOptions().dtype(at::kLong)))});
    }
    // Until a prefix is attached the cache holds the prefix being built (or nothing yet).
    const bool shared = p.prefix_positions > 0;
    const int64_t first_capacity = shared ? p.prefix_positions : request.kv_reserved;
    KVCache cache = transformer.NewCache(kv_pool_, request.prefix != nullptr ? 0 : first_capacity);
    request.kv_cache_bytes = cache.bytes();
    if (request.sequence == nullptr) {
      request.sequence =
          std::make_unique<Sequence>(std::move(cache), p.params, model_.tokenizer(),
                                     p.ignore_eos ? -1 : config.eos_token_id, config.vocab_size);
    } else {
      request.sequence->cache() = std::move(cache);  // Resuming: ids and sampler are kept.
    }
    if (request.prefix != nullptr) {
      AttachPrefix(request, request.prefix);
    } else if (shared && building_.contains(p.prefix_key.hash)) {
      request.awaiting_prefix = true;  // Another admitted request is prefilling this prefix.
    } else if (shared) {
      ++building_[p.prefix_key.hash];
      request.building_prefix = true;
      if (observer_ != nullptr) observer_->OnPrefixLookup(false, 0);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    request.prepared.input = PromptInput();
    Fail(request, status);
  }
}

void Engine::Impl::Fail(Request& request, const absl::Status& status) {
  ICAE_LOG(ERROR) << "request " << request.id << ": " << status;
  StopBuilding(request);
  request.sequence.reset();
  absl::MutexLock lock(&mu_);
  request.cancel_status = status;
  request.cancel_requested.store(true);
}

void Engine::Impl::StopBuilding(Request& request) {
  if (!request.building_prefix) return;
  request.building_prefix = false;
  auto it = building_.find(request.prepared.prefix_key.hash);
  if (it != building_.end() && --it->second == 0) building_.erase(it);
}

void Engine::Impl::AttachPrefix(Request& request, std::shared_ptr<const KVCache> prefix) {
  const PreparedRequest& p = request.prepared;
  const int64_t positions = p.prefix_positions;
  if (request.reserved_prefix) {
    // Admitted without a kept prefix, it reserved the prefix's positions: they now count as the
    // shared prefix's own (prefix_positions_alive_).
    absl::MutexLock lock(&mu_);
    request.reserved_prefix = false;
    // The prefix's blocks.
    const int64_t held = RoundUpToBlock(positions, options_.kv_block_tokens);
    request.kv_reserved -= held;
    kv_used_ -= held;
    PublishStateLocked();
  }
  KVCache& cache = request.sequence->cache();
  cache = model_.transformer().NewCache(kv_pool_, request.kv_reserved, std::move(prefix));
  request.kv_cache_bytes = cache.bytes();
  request.prefix.reset();  // The cache holds it now.
  request.awaiting_prefix = false;
  request.prefilled = positions;
  if (!request.building_prefix) {
    request.cached_positions = static_cast<int>(positions);
    if (observer_ != nullptr) observer_->OnPrefixLookup(true, positions);
  }
  StopBuilding(request);
}

bool Engine::Impl::ResolvePrefix(Request& request) {
  const PreparedRequest& p = request.prepared;
  if (std::shared_ptr<const KVCache> kept = prefix_cache_.Find(p.prefix_key)) {
    AttachPrefix(request, std::move(kept));
    return true;
  }
  if (building_.contains(p.prefix_key.hash)) return false;
  // Its builder left (cancelled, failed) or could not keep it: build it here.
  request.awaiting_prefix = false;
  ++building_[p.prefix_key.hash];
  request.building_prefix = true;
  if (observer_ != nullptr) observer_->OnPrefixLookup(false, 0);
  return true;
}

void Engine::Impl::PublishPrefix(Request& request) {
  PreparedRequest& p = request.prepared;
  const int64_t positions = request.sequence->cache().capacity();  // The prefix's blocks.
  std::atomic<int64_t>* alive = &prefix_positions_alive_;
  alive->fetch_add(positions);
  // Counted while it exists: the deleter runs when the cache and the last reader let go. Its
  // blocks go back to the pool before the budget counts them free, so that admission never
  // finds the budget's room without the pool's blocks.
  std::shared_ptr<const KVCache> frozen(
      new KVCache(std::move(request.sequence->cache())), [alive, positions](const KVCache* kv) {
        delete kv;
        alive->fetch_sub(positions);
      });
  prefix_cache_.Insert(p.prefix_key, frozen);
  PublishPrefixCache();
  AttachPrefix(request, std::move(frozen));
}

void Engine::Impl::PublishPrefixCache() {
  if (observer_ != nullptr) {
    const int64_t evictions = prefix_cache_.evictions();
    observer_->OnPrefixCache(prefix_cache_.bytes(), prefix_cache_.entries(),
                             evictions - evictions_reported_);
    evictions_reported_ = evictions;
  }
}

bool Engine::Impl::PicksFirstToken(const Request& request, int64_t n) const {
  const PreparedRequest& p = request.prepared;
  const int64_t after = request.prefilled + n;
  if (request.building_prefix && after == p.prefix_positions) return false;  // Shared first.
  return after == p.input.positions() && !request.resuming;
}

bool Engine::Impl::Prefilled(Request& request, int64_t n, const at::Tensor& hidden,
                             const float* last_logits) {
  const PreparedRequest& p = request.prepared;
  request.prefilled += n;
  if (request.building_prefix && request.prefilled == p.prefix_positions) {
    PublishPrefix(request);  // Never the last position: the prefill goes on after it.
    return false;
  }
  if (request.prefilled < p.input.positions()) return false;
  if (request.resuming) {  // Its last id is still to be fed: the next decode step does it.
    request.resuming = false;
    request.resume_ids = 0;
    return true;
  }
  if (last_logits != nullptr) {
    Accept(request, last_logits, absl::Now());
    return true;
  }
  const at::Tensor logits =
      model_.transformer().Logits(hidden[-1]).to(at::kCPU, at::kFloat).contiguous();  // [vocab]
  Accept(request, logits.data_ptr<float>(), absl::Now());
  return true;
}

void Engine::Impl::EndPrefill(Request& request) {
  request.prefill_done = true;
  request.prepared.input = PromptInput();
  request.prepared.prefix_key.slots.clear();
}

int64_t Engine::Impl::PrefillChunk(Request& request, int64_t budget) {
  if (request.prefill_done) return 0;
  if (request.sequence == nullptr) {  // StartPrefill failed: the sweep finishes it
    request.prefill_done = true;
    return 0;
  }
  bool done = false;
  int64_t used = 0;
  absl::Status status = CatchTorch("prefill", [&]() -> absl::Status {
    if (request.awaiting_prefix && !ResolvePrefix(request)) return absl::OkStatus();
    const PreparedRequest& p = request.prepared;
    while (used < budget && !done) {
      // A prefix being built ends a piece: it is frozen and shared before the rest goes on.
      const int64_t end = request.building_prefix ? p.prefix_positions : p.input.positions();
      const int64_t n = std::min(budget - used, end - request.prefilled);
      // Positions continue from the cache's length, so the chunks together equal one prefill.
      at::Tensor hidden = PrefillPrompt(model_.transformer(), p.input, request.prefilled,
                                        request.prefilled + n, request.sequence->cache());
      used += n;
      done = Prefilled(request, n, hidden);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    Fail(request, status);
    done = true;
  }
  if (done) EndPrefill(request);
  if (observer_ != nullptr && used > 0) observer_->OnPrefill(used, /*carried=*/false);
  return used;
}

namespace {

// Positions from `at` on that are computed (before the next KV-slot range), and the length of the
// KV range that starts at `at` (0 when none does).
std::pair<int64_t, int64_t> RunsAt(const PromptInput& input, int64_t at) {
  for (const PromptInput::KvRange& range : input.kv) {
    if (range.end() <= at) continue;
    if (range.begin <= at) return {0, range.end() - at};
    return {range.begin - at, 0};
  }
  return {input.positions() - at, 0};
}

}  // namespace

Request* Engine::Impl::TakeCarried(std::deque<RequestPtr>& prefilling, int64_t rows, int64_t* n) {
  *n = 0;
  for (RequestPtr& candidate : prefilling) {
    Request& request = *candidate;
    if (request.prefill_done || request.sequence == nullptr) continue;
    while (!request.prefill_done) {
      bool ready = true;
      absl::Status status = CatchTorch("prefill", [&]() -> absl::Status {
        ready = !request.awaiting_prefix || ResolvePrefix(request);
        return absl::OkStatus();
      });
      if (!status.ok()) {
        Fail(request, status);
        EndPrefill(request);
        break;
      }
      if (!ready) break;
      const PreparedRequest& p = request.prepared;
      const int64_t end = request.building_prefix ? p.prefix_positions : p.input.positions();
      const auto [computed, kv] = RunsAt(p.input, request.prefilled);
      if (computed > 0) {
        *n = std::min({rows, computed, end - request.prefilled});
        return &request;
      }
      // KV slots go in as they are (a copy, no compute).
      PrefillChunk(request, std::min(kv, end - request.prefilled));
    }
  }
  return nullptr;
}

}  // namespace icae::decoder
