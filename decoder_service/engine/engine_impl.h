// The decoder engine's internals, shared by its translation units (engine.cc: the scheduler loop,
// admission, decode steps and finishing; prefill.cc: prefill and slot-prefix reuse). Not for use
// outside decoder_service/engine.
#ifndef ICAE_DECODER_SERVICE_ENGINE_ENGINE_IMPL_H_
#define ICAE_DECODER_SERVICE_ENGINE_ENGINE_IMPL_H_

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/model/sequence.h"
#include "common/model/slot_decoder.h"
#include "decoder_service/engine/engine.h"
#include "decoder_service/engine/generate_input.h"
#include "decoder_service/engine/prefix_cache.h"
#include "decoder_service/engine/request_validator.h"

namespace icae::decoder {

inline double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// One request from Enqueue to its final event.
struct Request {
  uint64_t id = 0;
  PreparedRequest prepared;
  GenerationSink sink;
  absl::Time arrival;
  absl::Time admitted;
  absl::Time last_step;
  int steps = 0;                       // Steps that picked a token (EOS included).
  double first_token_seconds = 0;      // Admission to the first step.
  std::unique_ptr<Sequence> sequence;  // Set at admission; holds the KV cache.
  int64_t kv_cache_bytes = 0;
  int64_t prefilled = 0;    // Context positions in the KV cache so far (chunked prefill).
  bool prefill_done = false;  // The whole context is in (or the prefill failed): it may run.
  // The KV budget (kv_budget.cc). Admission reserves what the request needs now (its context, one
  // block to grow into), the decode loop grows it block by block, and when the budget is spent the
  // youngest admitted request is preempted: its KV freed, it waits again at the queue's front and
  // resumes by prefilling its context and what it had generated (recompute).
  int64_t kv_reserved = 0;       // Positions this request holds in the budget (own storage).
  bool in_batch = false;         // Admitted and not preempted: counted in running_ and kv_used_.
  bool reserved_prefix = false;  // kv_reserved includes its (not yet shared) prefix positions.
  uint64_t admit_order = 0;      // Order of first admission; the youngest is preempted first.
  bool resuming = false;         // Preempted after its first token: the next prefill picks none.
  int64_t resume_ids = 0;        // Generated ids the resuming prefill appends to the context.
  // Slot-prefix reuse (prepared.prefix_positions > 0), one of: the shared prefix was found
  // (`prefix` set, before or at admission); this request prefills it into its own cache and then
  // shares it (`building_prefix`); another request is building it (`awaiting_prefix`).
  std::shared_ptr<const KVCache> prefix;
  bool building_prefix = false;
  bool awaiting_prefix = false;
  int cached_positions = 0;  // Positions reused from a prefix another request built.
  // Set by Cancel (status under the engine lock, flag readable without it).
  std::atomic<bool> cancel_requested{false};
  absl::Status cancel_status;
  // prepared.keep_step_logits: the logits of the steps not yet handed to the sink.
  std::vector<std::vector<float>> step_logits;
};

class Engine::Impl {
 public:
  Impl(const SlotDecoder* model, const EngineOptions& options, std::shared_ptr<KvBlockPool> pool,
       EngineObserver* observer)
      : model_(*model),
        options_(options),
        observer_(observer),
        kv_pool_(std::move(pool)),
        kv_limit_(options.KvLimit()),
        prefix_cache_(options.prefix_cache_bytes) {}

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }

  // `prepare` validates the input (on the calling thread) into a PreparedRequest.
  template <typename Prepare>
  absl::StatusOr<uint64_t> Enqueue(Prepare&& prepare, GenerationSink sink) {
    {
      absl::MutexLock lock(&mu_);
      if (draining_) return absl::UnavailableError("the decoder is draining; retry elsewhere");
    }
    ASSIGN_OR_RETURN(PreparedRequest prepared, prepare());
    auto request = std::make_unique<Request>();
    request->prepared = std::move(prepared);
    request->sink = std::move(sink);
    request->arrival = absl::Now();
    uint64_t id;
    {
      absl::MutexLock lock(&mu_);
      if (draining_) return absl::UnavailableError("the decoder is draining; retry elsewhere");
      const int free_slots = std::max(0, options_.max_running - running_);
      if (static_cast<int>(waiting_.size()) >= options_.max_waiting + free_slots) {
        return absl::ResourceExhaustedError(
            absl::StrCat("the decoder is full: ", running_, " running and ", waiting_.size(),
                         " waiting (--max_waiting ", options_.max_waiting, "); retry later"));
      }
      id = request->id = ++next_id_;
      requests_[id] = request.get();
      waiting_.push_back(std::move(request));
      PublishStateLocked();
    }
    return id;
  }

  void Cancel(uint64_t id, absl::Status status) {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second->cancel_requested.load()) return;
    it->second->cancel_status = std::move(status);
    it->second->cancel_requested.store(true);
    wake_ = true;
  }

  void Drain() {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }

  void Shutdown() {
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

  EngineState state() const {
    absl::MutexLock lock(&mu_);
    return EngineState{running_, static_cast<int>(waiting_.size()), KvTokensUsedLocked(),
                       kv_limit_};
  }

  const EngineOptions& options() const { return options_; }
  const SlotDecoder* model() const { return &model_; }

 private:
  using RequestPtr = std::unique_ptr<Request>;

  void Loop();
  // Takes cancelled or expired waiting requests out of the queue and admits what fits.
  void Schedule(std::vector<RequestPtr>& admitted, std::vector<RequestPtr>& dropped, bool* stop);
  // Positions `request` must reserve to be admitted now (with or without a reused prefix).
  int64_t AdmissionNeed(const Request& request, bool prefix_hit) const;
  // Before a decode step: every running sequence gets room for its next position, growing its
  // reservation; when the budget cannot, idle kept prefixes go, then the youngest admitted
  // requests are preempted (moved back to the waiting queue's front).
  void MakeRoom(std::vector<RequestPtr>& running, std::deque<RequestPtr>& prefilling);
  // Frees `request`'s KV and reservation and marks it for resumption.
  void Preempt(Request& request);
  // Creates the request's sequence (kept across preemptions) and KV cache, and its embeddings.
  void StartPrefill(Request& request);
  // Prefills up to `budget` more context positions and returns how many (0 while it waits for
  // another request's prefix, or when it is done). Sets prefill_done once the whole context is in
  // and the first token was picked (or the prefill failed: the request is then marked cancelled).
  int64_t PrefillChunk(Request& request, int64_t budget);
  // `n` more context positions of `request` are in its cache (`hidden`: their final-normed
  // states): shares a prefix it has just built and, once the whole context is in, picks the first
  // token (from `last_logits`, the last position's float32 logits, when the step computed them).
  // True when the prefill is done.
  bool Prefilled(Request& request, int64_t n, const at::Tensor& hidden,
                 const float* last_logits = nullptr);
  // Whether `n` more positions complete `request`'s prefill with a first token to pick.
  bool PicksFirstToken(const Request& request, int64_t n) const;
  // A prefill finished (done or failed): sets prefill_done and drops what it no longer needs.
  void EndPrefill(Request& request);
  // While sequences run, the oldest prefilling request that can go on gives up to `rows` of its
  // context positions to ride along the next decode step (KV-slot positions on the way cost no
  // compute and go in at once). Null when none can (all wait for a prefix, or none left).
  Request* TakeCarried(std::deque<RequestPtr>& prefilling, int64_t rows, int64_t* n);
  // An awaiting request: attaches the prefix once kept, or builds it itself when no other request
  // does any more. False while it still waits.
  bool ResolvePrefix(Request& request);
  // The request's sequence continues `prefix` (reused or just built): a new own cache after it,
  // and the prefix's positions leave the request's reservation (the prefix counts on its own).
  void AttachPrefix(Request& request, std::shared_ptr<const KVCache> prefix);
  // The building request's cache holds the whole prefix: freezes it, keeps it in the prefix
  // cache and attaches it.
  void PublishPrefix(Request& request);
  // Stops counting `request` as the builder of its prefix.
  void StopBuilding(Request& request);
  // Marks the request failed with `status` (its final event is sent by the loop's sweep).
  void Fail(Request& request, const absl::Status& status);
  void PublishPrefixCache();
  // One decode step of the running batch; with `carried`, `carried_n` of its context positions
  // ride along (Transformer::DecodeStep with a chunk).
  void DecodeStep(std::vector<RequestPtr>& running, Request* carried = nullptr,
                  int64_t carried_n = 0);
  // Picks the request's next id from its step's float32 logits [vocab] and hands the id and its
  // text to the sink (the final event, sent by Finish, carries them when the sequence finished).
  void Accept(Request& request, const float* logits, absl::Time now);
  // The status that cuts `request` now (cancelled, deadline), or OK.
  absl::Status CutStatus(Request& request, absl::Time now);
  // Sends the final event with `status` (OK: the sequence's own finish reason), unregisters the
  // request and frees its KV cache.
  void Finish(RequestPtr request, absl::Status status);
  // Reports the scheduler state to the observer (under the lock, so reports stay in order).
  void PublishStateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t KvTokensUsedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return kv_used_ + prefix_positions_alive_.load();
  }

  const SlotDecoder& model_;
  const EngineOptions options_;
  EngineObserver* const observer_;
  // Every KV cache of the engine takes its blocks here: the pool holds --max_kv_tokens (in whole
  // blocks) and the budget below keeps the reservations within it, so taking a block never fails.
  const std::shared_ptr<KvBlockPool> kv_pool_;
  const int64_t kv_limit_;  // The pool's positions: what KvTokensUsedLocked may reach.
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::deque<RequestPtr> waiting_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Request*> requests_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t kv_used_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t admissions_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;

  // Slot-prefix reuse. Positions of shared prefixes that still exist (kept or read), counted in
  // the KV budget; declared before the cache so that it outlives every prefix.
  std::atomic<int64_t> prefix_positions_alive_{0};
  // Scheduler thread only (Schedule runs there too).
  PrefixCache prefix_cache_;
  absl::flat_hash_map<uint64_t, int> building_;  // prefix hash -> requests building it
  int64_t evictions_reported_ = 0;  // prefix_cache_.evictions() at the last OnPrefixCache
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_ENGINE_IMPL_H_
