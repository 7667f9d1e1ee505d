#include "decoder_service/engine/engine.h"

#include <algorithm>
#include <limits>

#include "common/base/logging.h"
#include "common/model/generate.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/engine_impl.h"

namespace icae::decoder {

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
    // While sequences run and chunking is on, prefill rides along their decode steps (below);
    // otherwise it runs here: at most prefill_chunk_tokens positions per step (oldest first), so
    // the running sequences' next decode step comes after one chunk, not after whole contexts.
    // A request waiting for another's prefix takes none of the budget and is passed over.
    const int64_t chunk = options_.prefill_chunk_tokens;
    const bool carry = chunk > 0 && options_.mixed_step_rows > 0 && !running.empty();
    int64_t budget = carry ? 0 : chunk > 0 ? chunk : std::numeric_limits<int64_t>::max();
    for (auto it = prefilling.begin(); it != prefilling.end() && budget > 0; ++it) {
      budget -= PrefillChunk(**it, budget);
    }
    for (auto it = prefilling.begin(); it != prefilling.end();) {
      if ((*it)->prefill_done) {
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
    MakeRoom(running, prefilling);
    if (running.empty()) continue;
    // Up to mixed_step_rows rows in all (at least one position of context), within the chunk.
    int64_t carried_n = 0;
    Request* carried =
        carry ? TakeCarried(prefilling,
                            std::min<int64_t>(chunk, std::max<int64_t>(1, options_.mixed_step_rows -
                                                                              running.size())),
                            &carried_n)
              : nullptr;
    DecodeStep(running, carried, carried_n);
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
    // Held only once admitted, so that a waiting request pins nothing.
    std::shared_ptr<const KVCache> prefix =
        p.prefix_positions > 0 ? prefix_cache_.Find(p.prefix_key) : nullptr;
    const int64_t need = AdmissionNeed(request, prefix != nullptr);
    // Kept prefixes nobody reads give way to a request that needs the room.
    while (KvTokensUsedLocked() + need > kv_limit_ && prefix_cache_.EvictIdle()) {
      evicted = true;
    }
    if (KvTokensUsedLocked() + need > kv_limit_) break;
    request.reserved_prefix = prefix == nullptr && p.prefix_positions > 0;
    request.prefix = std::move(prefix);
    request.kv_reserved = need;
    request.in_batch = true;
    if (request.admit_order == 0) request.admit_order = ++admissions_;
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

void Engine::Impl::DecodeStep(std::vector<RequestPtr>& running, Request* carried,
                              int64_t carried_n) {
  std::vector<Sequence*> sequences;
  for (RequestPtr& request : running) sequences.push_back(request->sequence.get());
  if (observer_ != nullptr) observer_->OnDecodeStep(static_cast<int>(running.size()));
  at::Tensor carried_hidden;
  // When the carried rows end a prefill, its first token's logits come with the step's.
  const bool first_token = carried != nullptr && PicksFirstToken(*carried, carried_n);
  absl::StatusOr<at::Tensor> logits =
      CatchTorch("decode step", [&]() -> absl::StatusOr<at::Tensor> {
        if (carried == nullptr) return DecodeLogits(model_.transformer(), sequences);
        const Transformer::StepChunk chunk{
            carried->prepared.input.embeds.narrow(0, carried->prefilled, carried_n),
            &carried->sequence->cache()};
        return DecodeLogits(model_.transformer(), sequences, &chunk, &carried_hidden,
                            first_token);
      });  // [batch (+ 1), vocab]
  if (!logits.ok()) {
    ICAE_LOG(ERROR) << "decode step over " << running.size() << " sequences: " << logits.status();
    for (RequestPtr& request : running) {
      request->sequence.reset();
      absl::MutexLock lock(&mu_);
      request->cancel_status = logits.status();
      request->cancel_requested.store(true);
    }
    if (carried != nullptr) {
      Fail(*carried, logits.status());
      EndPrefill(*carried);
    }
    return;  // The loop's sweep finishes them.
  }
  const absl::Time now = absl::Now();
  const int64_t vocab = logits->size(1);
  const float* rows = logits->data_ptr<float>();
  for (size_t row = 0; row < running.size(); ++row) {
    Accept(*running[row], rows + row * vocab, now);
  }
  if (carried == nullptr) return;
  if (observer_ != nullptr) observer_->OnPrefill(carried_n, /*carried=*/true);
  bool done = false;
  absl::Status status = CatchTorch("prefill", [&]() -> absl::Status {
    done = Prefilled(*carried, carried_n, carried_hidden,
                     first_token ? rows + running.size() * vocab : nullptr);
    return absl::OkStatus();
  });
  if (!status.ok()) Fail(*carried, status);
  if (done || !status.ok()) EndPrefill(*carried);
}

void Engine::Impl::Accept(Request& request, const float* logits, absl::Time now) {
  Sequence& seq = *request.sequence;
  if (request.prepared.keep_step_logits) {
    request.step_logits.emplace_back(logits, logits + model_.config().vocab_size);
  }
  const int accepted_id = seq.Accept(logits);
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
  event.step_logits = std::move(request.step_logits);
  request.step_logits.clear();
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
  event.step_logits = std::move(request->step_logits);
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
    if (request->in_batch) {
      --running_;
      kv_used_ -= request->kv_reserved;
      request->in_batch = false;
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
  ASSIGN_OR_RETURN(std::shared_ptr<KvBlockPool> pool,
                   CatchTorch("allocating the KV pool (--max_kv_tokens)",
                              [&]() -> absl::StatusOr<std::shared_ptr<KvBlockPool>> {
                                return model->transformer().NewBlockPool(
                                    options.KvBlocks(), options.kv_block_tokens);
                              }));
  auto impl = std::make_unique<Impl>(model, options, std::move(pool), observer);
  impl->Start();
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() { Shutdown(); }

absl::StatusOr<uint64_t> Engine::Enqueue(GenerateInput input, GenerationSink sink) {
  return impl_->Enqueue(
      [&] { return PrepareRequest(*impl_->model(), impl_->options(), std::move(input)); },
      std::move(sink));
}
absl::StatusOr<uint64_t> Engine::Enqueue(LocalInput input, GenerationSink sink) {
  return impl_->Enqueue(
      [&] { return PrepareLocalRequest(*impl_->model(), impl_->options(), std::move(input)); },
      std::move(sink));
}
void Engine::Cancel(uint64_t id, absl::Status status) { impl_->Cancel(id, std::move(status)); }
void Engine::Drain() { impl_->Drain(); }
void Engine::Shutdown() { impl_->Shutdown(); }
EngineState Engine::state() const { return impl_->state(); }
const EngineOptions& Engine::options() const { return impl_->options(); }

}  // namespace icae::decoder
