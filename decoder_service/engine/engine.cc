#include "decoder_service/engine/engine.h"

#include <ATen/ATen.h>

#include <atomic>
#include <deque>
#include <memory>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/sequence.h"
#include "common/model/slot_decoder.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/generate_input.h"
#include "decoder_service/engine/prefix_cache.h"
#include "decoder_service/engine/request_validator.h"

namespace icae::decoder {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

}  // namespace

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
  int64_t kv_reserved = 0;  // Positions this request holds in the engine's KV budget.
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
};

class Engine::Impl {
 public:
  Impl(const SlotDecoder* model, const EngineOptions& options, EngineObserver* observer)
      : model_(*model),
        options_(options),
        observer_(observer),
        prefix_cache_(options.prefix_cache_bytes) {}

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }

  absl::StatusOr<uint64_t> Enqueue(GenerateInput input, GenerationSink sink) {
    {
      absl::MutexLock lock(&mu_);
      if (draining_) return absl::UnavailableError("the decoder is draining; retry elsewhere");
    }
    ASSIGN_OR_RETURN(PreparedRequest prepared, PrepareRequest(model_, options_, std::move(input)));
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
                       options_.max_kv_tokens};
  }

  const EngineOptions& options() const { return options_; }

 private:
  using RequestPtr = std::unique_ptr<Request>;

  void Loop();
  // Takes cancelled or expired waiting requests out of the queue and admits what fits.
  void Schedule(std::vector<RequestPtr>& admitted, std::vector<RequestPtr>& dropped, bool* stop);
  // Creates the request's sequence and KV cache (at admission).
  void StartPrefill(Request& request);
  // Prefills up to `budget` more context positions and returns how many (0 while it waits for
  // another request's prefix). *done once the whole context is in and the first token was picked
  // (or the prefill failed: the request is then marked cancelled).
  int64_t PrefillChunk(Request& request, int64_t budget, bool* done);
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
  void DecodeStep(std::vector<RequestPtr>& running);
  // Hands the new id/text of `request` to its sink (final when its sequence finished).
  void Emit(Request& request, int accepted_id, absl::Time now);
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
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::deque<RequestPtr> waiting_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Request*> requests_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t kv_used_ ABSL_GUARDED_BY(mu_) = 0;
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
};

void Engine::Impl::Loop() {
  ConfigureThreads(options_.threads);
  c10::InferenceMode guard;
  std::vector<RequestPtr> running;     // Owned by this thread.
  std::deque<RequestPtr> prefilling;   // Admitted, context not yet all in (FIFO).
  while (true) {
    std::vector<RequestPtr> admitted, dropped;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this, &running, &prefilling]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || wake_ || !waiting_.empty() || !running.empty() ||
               !prefilling.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      wake_ = false;
    }
    Schedule(admitted, dropped, &stop);
    const absl::Status shutdown = absl::UnavailableError("the decoder shut down");
    for (RequestPtr& request : dropped) {
      absl::Status why = stop ? shutdown : CutStatus(*request, absl::Now());
      Finish(std::move(request), why);
    }
    if (stop) {
      for (RequestPtr& request : running) Finish(std::move(request), shutdown);
      for (RequestPtr& request : prefilling) Finish(std::move(request), shutdown);
      for (RequestPtr& request : admitted) Finish(std::move(request), shutdown);
      return;
    }
    for (RequestPtr& request : admitted) {
      StartPrefill(*request);
      prefilling.push_back(std::move(request));
    }
    // Prefill: with chunking, at most prefill_chunk_tokens positions per step (oldest first), so
    // the running sequences' next decode step comes after one chunk, not after whole contexts.
    // A request waiting for another's prefix takes none of the budget and is passed over.
    const int64_t chunk = options_.prefill_chunk_tokens;
    int64_t budget = chunk > 0 ? chunk : std::numeric_limits<int64_t>::max();
    for (auto it = prefilling.begin(); it != prefilling.end() && budget > 0;) {
      bool done = false;
      budget -= PrefillChunk(**it, budget, &done);
      if (done) {
        running.push_back(std::move(*it));
        it = prefilling.erase(it);
      } else {
        ++it;
      }
    }
    // Leave at once: finished by the prefill's token, cancelled, or past the deadline.
    const absl::Time now = absl::Now();
    {
      std::deque<RequestPtr> waiting_prefill;
      for (RequestPtr& request : prefilling) {
        if (absl::Status cut = CutStatus(*request, now); !cut.ok()) {
          Finish(std::move(request), cut);
        } else {
          waiting_prefill.push_back(std::move(request));
        }
      }
      prefilling = std::move(waiting_prefill);
    }
    std::vector<RequestPtr> still;
    for (RequestPtr& request : running) {
      if (absl::Status cut = CutStatus(*request, now); !cut.ok()) {
        Finish(std::move(request), cut);
      } else if (request->sequence->finished()) {
        Finish(std::move(request), absl::OkStatus());
      } else {
        still.push_back(std::move(request));
      }
    }
    running = std::move(still);
    if (running.empty()) continue;
    DecodeStep(running);
  }
}

void Engine::Impl::Schedule(std::vector<RequestPtr>& admitted, std::vector<RequestPtr>& dropped,
                            bool* stop) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    *stop = true;
    for (RequestPtr& request : waiting_) dropped.push_back(std::move(request));
    waiting_.clear();
    return;
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Request& request = **it;
    if (request.cancel_requested.load() || now >= request.prepared.deadline) {
      dropped.push_back(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  bool evicted = false;
  while (!waiting_.empty() && running_ < options_.max_running) {
    Request& request = *waiting_.front();
    const PreparedRequest& p = request.prepared;
    // A kept prefix is looked up now: a request that reuses one needs only its own positions.
    if (p.prefix_positions > 0 && request.prefix == nullptr) {
      request.prefix = prefix_cache_.Find(p.prefix_hash, p.prefix_key);
    }
    const int64_t need =
        p.reserved_positions() - (request.prefix != nullptr ? p.prefix_positions : 0);
    // Kept prefixes nobody reads give way to a request that needs the room.
    while (KvTokensUsedLocked() + need > options_.max_kv_tokens && prefix_cache_.EvictIdle()) {
      evicted = true;
    }
    if (KvTokensUsedLocked() + need > options_.max_kv_tokens) break;
    request.kv_reserved = need;
    kv_used_ += need;
    ++running_;
    admitted.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  if (evicted) PublishPrefixCache();
  if (!admitted.empty() || evicted) PublishStateLocked();
}

absl::Status Engine::Impl::CutStatus(Request& request, absl::Time now) {
  if (request.cancel_requested.load()) {
    absl::MutexLock lock(&mu_);
    return request.cancel_status;
  }
  if (now >= request.prepared.deadline) {
    return absl::DeadlineExceededError("the request's deadline passed during generation");
  }
  return absl::OkStatus();
}

void Engine::Impl::StartPrefill(Request& request) {
  request.admitted = absl::Now();
  const PreparedRequest& p = request.prepared;
  if (observer_ != nullptr) {
    observer_->OnAdmitted(Seconds(request.admitted - request.arrival), p.prompt_tokens,
                          p.slot_tokens, p.uncompressed_context_tokens);
  }
  const Transformer& transformer = model_.transformer();
  const ModelConfig& config = model_.config();
  absl::Status status = CatchTorch("prefill", [&]() -> absl::Status {
    // Until a prefix is attached the cache holds the prefix being built (or nothing yet).
    const bool shared = p.prefix_positions > 0;
    const int64_t first_capacity = shared ? p.prefix_positions : p.reserved_positions();
    KVCache cache = transformer.NewCache(request.prefix != nullptr ? 1 : first_capacity);
    request.kv_cache_bytes = cache.bytes();
    request.sequence =
        std::make_unique<Sequence>(std::move(cache), p.params, model_.tokenizer(),
                                   p.ignore_eos ? -1 : config.eos_token_id, config.vocab_size);
    if (request.prefix != nullptr) {
      AttachPrefix(request, request.prefix);
    } else if (shared && building_.contains(p.prefix_hash)) {
      request.awaiting_prefix = true;  // Another admitted request is prefilling this prefix.
    } else if (shared) {
      ++building_[p.prefix_hash];
      request.building_prefix = true;
      if (observer_ != nullptr) observer_->OnPrefixLookup(false, 0);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    request.prepared.embeds = at::Tensor();
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
  auto it = building_.find(request.prepared.prefix_hash);
  if (it != building_.end() && --it->second == 0) building_.erase(it);
}

void Engine::Impl::AttachPrefix(Request& request, std::shared_ptr<const KVCache> prefix) {
  const PreparedRequest& p = request.prepared;
  const int64_t positions = p.prefix_positions;
  KVCache& cache = request.sequence->cache();
  cache = model_.transformer().NewCache(p.reserved_positions() - positions, std::move(prefix));
  request.kv_cache_bytes = cache.bytes();
  request.prefix.reset();  // The cache holds it now.
  request.awaiting_prefix = false;
  request.prefilled = positions;
  if (!request.building_prefix) {
    request.cached_positions = static_cast<int>(positions);
    if (observer_ != nullptr) observer_->OnPrefixLookup(true, positions);
  }
  StopBuilding(request);
  absl::MutexLock lock(&mu_);
  // A reuser reserved only its own positions at admission; the others hand the prefix's back.
  const int64_t handed_back =
      std::max<int64_t>(0, request.kv_reserved - (p.reserved_positions() - positions));
  request.kv_reserved -= handed_back;
  kv_used_ -= handed_back;
  PublishStateLocked();
}

bool Engine::Impl::ResolvePrefix(Request& request) {
  const PreparedRequest& p = request.prepared;
  if (std::shared_ptr<const KVCache> kept = prefix_cache_.Find(p.prefix_hash, p.prefix_key)) {
    AttachPrefix(request, std::move(kept));
    return true;
  }
  if (building_.contains(p.prefix_hash)) return false;
  // Its builder left (cancelled, failed) or could not keep it: build it here.
  request.awaiting_prefix = false;
  ++building_[p.prefix_hash];
  request.building_prefix = true;
  if (observer_ != nullptr) observer_->OnPrefixLookup(false, 0);
  return true;
}

void Engine::Impl::PublishPrefix(Request& request) {
  PreparedRequest& p = request.prepared;
  const int64_t positions = p.prefix_positions;
  std::atomic<int64_t>* alive = &prefix_positions_alive_;
  alive->fetch_add(positions);
  // Counted while it exists: the deleter runs when the cache and the last reader let go.
  std::shared_ptr<const KVCache> frozen(
      new KVCache(std::move(request.sequence->cache())), [alive, positions](const KVCache* kv) {
        alive->fetch_sub(positions);
        delete kv;
      });
  prefix_cache_.Insert(p.prefix_hash, p.prefix_key.clone(), frozen);
  PublishPrefixCache();
  AttachPrefix(request, std::move(frozen));
}

void Engine::Impl::PublishPrefixCache() {
  if (observer_ != nullptr) {
    observer_->OnPrefixCache(prefix_cache_.bytes(), prefix_cache_.entries(),
                             prefix_cache_.evictions());
  }
}

int64_t Engine::Impl::PrefillChunk(Request& request, int64_t budget, bool* done) {
  *done = false;
  if (request.sequence == nullptr) {  // StartPrefill failed: the sweep finishes it
    *done = true;
    return 0;
  }
  int64_t used = 0;
  absl::Status status = CatchTorch("prefill", [&]() -> absl::Status {
    if (request.awaiting_prefix && !ResolvePrefix(request)) return absl::OkStatus();
    const Transformer& transformer = model_.transformer();
    const PreparedRequest& p = request.prepared;
    const int64_t total = p.embeds.size(0);
    while (used < budget) {
      // A prefix being built ends a piece: it is frozen and shared before the rest goes on.
      const int64_t end = request.building_prefix ? p.prefix_positions : total;
      const int64_t n = std::min(budget - used, end - request.prefilled);
      // Positions continue from the cache's length, so the chunks together equal one prefill.
      at::Tensor hidden =
          transformer.Prefill(p.embeds.narrow(0, request.prefilled, n), request.sequence->cache());
      request.prefilled += n;
      used += n;
      if (request.building_prefix && request.prefilled == p.prefix_positions) {
        PublishPrefix(request);
        continue;
      }
      if (request.prefilled < total) continue;
      at::Tensor logits = transformer.Logits(hidden[-1]);  // [vocab]
      const int id = request.sequence->Accept(logits);
      *done = true;
      Emit(request, id, absl::Now());
      break;
    }
    return absl::OkStatus();
  });
  if (*done || !status.ok()) {  // No longer needed.
    request.prepared.embeds = at::Tensor();
    request.prepared.prefix_key = at::Tensor();
  }
  if (!status.ok()) {
    Fail(request, status);
    *done = true;
  }
  return used;
}

void Engine::Impl::DecodeStep(std::vector<RequestPtr>& running) {
  const Transformer& transformer = model_.transformer();
  std::vector<int64_t> tokens;
  std::vector<KVCache*> caches;
  for (RequestPtr& request : running) {
    tokens.push_back(request->sequence->last_token());
    caches.push_back(&request->sequence->cache());
  }
  if (observer_ != nullptr) observer_->OnDecodeStep(static_cast<int>(running.size()));
  absl::StatusOr<at::Tensor> logits =
      CatchTorch("decode step", [&]() -> absl::StatusOr<at::Tensor> {
        at::Tensor embeds =
            transformer.Embed(at::tensor(tokens, at::TensorOptions().dtype(at::kLong)));
        return transformer.Logits(transformer.DecodeStep(embeds, caches))
            .to(at::kCPU, at::kFloat)
            .contiguous();  // [batch, vocab]
      });
  if (!logits.ok()) {
    ICAE_LOG(ERROR) << "decode step over " << running.size() << " sequences: " << logits.status();
    for (RequestPtr& request : running) {
      request->sequence.reset();
      absl::MutexLock lock(&mu_);
      request->cancel_status = logits.status();
      request->cancel_requested.store(true);
    }
    return;  // The loop's sweep finishes them.
  }
  const absl::Time now = absl::Now();
  const int64_t vocab = logits->size(1);
  const float* rows = logits->data_ptr<float>();
  for (size_t row = 0; row < running.size(); ++row) {
    Request& request = *running[row];
    const int id = request.sequence->Accept(rows + row * vocab);
    Emit(request, id, now);
  }
}

void Engine::Impl::Emit(Request& request, int accepted_id, absl::Time now) {
  Sequence& seq = *request.sequence;
  const bool eos = seq.finished() && seq.finish_reason() == FinishReason::kEos;
  if (++request.steps == 1) {
    request.first_token_seconds = Seconds(now - request.admitted);
    if (observer_ != nullptr) observer_->OnFirstToken(request.first_token_seconds);
  } else if (observer_ != nullptr) {
    observer_->OnInterToken(Seconds(now - request.last_step));
  }
  request.last_step = now;
  if (!eos && observer_ != nullptr) observer_->OnTokens(1);
  // The final event (sent by the loop's sweep) carries the last step's id and text.
  if (seq.finished()) return;
  GenerationEvent event;
  event.token_ids.push_back(accepted_id);
  event.text = seq.TakeNewText();
  request.sink(std::move(event));
}

void Engine::Impl::Finish(RequestPtr request, absl::Status status) {
  GenerationEvent event;
  event.final = true;
  const Sequence* seq = request->sequence.get();
  if (seq != nullptr && seq->finished() && seq->finish_reason() != FinishReason::kCancelled &&
      status.ok()) {
    event.finish_reason = seq->finish_reason();
    // The last step's id and text were held back for this event.
    if (seq->finish_reason() != FinishReason::kEos) event.token_ids.push_back(seq->ids().back());
    event.text = request->sequence->TakeNewText();
  } else if (status.ok()) {
    status = absl::InternalError("generation ended without a finish reason");
  }
  event.status = status;
  const absl::Time now = absl::Now();
  GenerationUsage& usage = event.usage;
  const PreparedRequest& p = request->prepared;
  usage.slot_tokens = p.slot_tokens;
  usage.prompt_tokens = p.prompt_tokens;
  usage.uncompressed_context_tokens = p.uncompressed_context_tokens;
  usage.generated_tokens = seq != nullptr ? static_cast<int>(seq->ids().size()) : 0;
  usage.kv_cache_bytes = request->kv_cache_bytes;
  usage.cached_positions = request->cached_positions;
  const bool was_admitted = request->admitted != absl::Time();
  usage.queue_seconds = Seconds((was_admitted ? request->admitted : now) - request->arrival);
  usage.total_seconds = Seconds(now - request->arrival);
  usage.time_to_first_token_seconds = request->first_token_seconds;
  {
    absl::MutexLock lock(&mu_);
    requests_.erase(request->id);
    if (was_admitted) {
      --running_;
      kv_used_ -= request->kv_reserved;
    }
  }
  StopBuilding(*request);
  request->prefix.reset();
  request->sequence.reset();  // Frees its KV cache (a shared prefix when it was the last reader).
  {
    absl::MutexLock lock(&mu_);
    PublishStateLocked();
  }
  if (observer_ != nullptr) {
    const char* reason = status.ok() ? FinishReasonName(event.finish_reason)
                         : (status.code() == absl::StatusCode::kCancelled ||
                            status.code() == absl::StatusCode::kDeadlineExceeded ||
                            status.code() == absl::StatusCode::kUnavailable)
                             ? "cancelled"
                             : "error";
    observer_->OnFinished(reason, usage.total_seconds);
  }
  request->sink(std::move(event));
}

void Engine::Impl::PublishStateLocked() {
  if (observer_ != nullptr) {
    observer_->OnState(running_, static_cast<int>(waiting_.size()), KvTokensUsedLocked());
  }
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const SlotDecoder* model,
                                                       const EngineOptions& options,
                                                       EngineObserver* observer) {
  if (model == nullptr) return absl::InvalidArgumentError("Engine::Create: no model");
  RETURN_IF_ERROR(options.Validate(model->config().max_position_embeddings));
  auto impl = std::make_unique<Impl>(model, options, observer);
  impl->Start();
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() { Shutdown(); }

absl::StatusOr<uint64_t> Engine::Enqueue(GenerateInput input, GenerationSink sink) {
  return impl_->Enqueue(std::move(input), std::move(sink));
}
void Engine::Cancel(uint64_t id, absl::Status status) { impl_->Cancel(id, std::move(status)); }
void Engine::Drain() { impl_->Drain(); }
void Engine::Shutdown() { impl_->Shutdown(); }
EngineState Engine::state() const { return impl_->state(); }
const EngineOptions& Engine::options() const { return impl_->options(); }

}  // namespace icae::decoder
