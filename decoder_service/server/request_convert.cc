#include "decoder_service/server/request_convert.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/codec/tensor_codec.h"
#include "common/model/slot_decoder.h"
#include "decoder_service/engine/generate_input.h"
#include "decoder_service/server/slot_handles.h"

namespace icae::decoder {
namespace {

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Inline slots, or the slots a handle fetched (`where` names the part in errors).
absl::StatusOr<ContextInput> DecodeSlots(const v1::MemorySlots& slots, const std::string& where,
                                         int64_t max_slot_elements) {
  if (slots.kind() != v1::EMBEDDING && slots.kind() != v1::KV &&
      slots.kind() != v1::SLOT_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".kind ", static_cast<int>(slots.kind()), " is not a slot kind"));
  }
  absl::StatusOr<at::Tensor> tensor = DecodeTensor(slots.slots(), max_slot_elements);
  if (!tensor.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".slots: ", tensor.status().message()));
  }
  ContextInput in;
  in.kind = ContextInput::Kind::kSlots;
  in.slots = *std::move(tensor);
  in.slot_kind = slots.kind() == v1::KV ? SlotKind::kKv : SlotKind::kEmbedding;
  in.encoder_id = slots.encoder_id();
  in.source_tokens = slots.source_tokens();
  in.num_segments = slots.num_segments();
  in.mem_size = slots.mem_size();
  return in;
}

// What a handle promised must be what the store gave (a key reused by another encoder, or a
// handle edited by the client, is refused before use).
absl::Status CheckHandle(const v1::SlotHandle& handle, const v1::MemorySlots& slots,
                         const std::string& where) {
  // Slots sit on axis 0 of an EMBEDDING tensor, axis 3 of a KV one.
  const int axis = slots.kind() == v1::KV ? 3 : 0;
  const int64_t rows = slots.slots().shape_size() > axis ? slots.slots().shape(axis) : -1;
  if (handle.encoder_id() != slots.encoder_id() || handle.num_slots() != rows ||
      handle.kind() != slots.kind()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": the handle says encoder ", handle.encoder_id(), ", ", handle.num_slots(),
        " slots; the store holds encoder ", slots.encoder_id(), ", ", rows, " slots"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ContextInput> DecodePart(const v1::ContextPart& part, size_t index,
                                        int64_t max_slot_elements) {
  ContextInput in;
  switch (part.part_case()) {
    case v1::ContextPart::kSlots:
      return DecodeSlots(part.slots(), absl::StrCat("context[", index, "].slots"),
                         max_slot_elements);
    case v1::ContextPart::kHandle:
      break;  // fetched by ToGenerateInput
    case v1::ContextPart::kText:
      in.kind = ContextInput::Kind::kText;
      in.text = part.text();
      return in;
    case v1::ContextPart::kTokenIds:
      in.kind = ContextInput::Kind::kTokenIds;
      in.token_ids.assign(part.token_ids().ids().begin(), part.token_ids().ids().end());
      return in;
    case v1::ContextPart::PART_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("context[", index, "] is empty"));
}

}  // namespace

absl::Status ToGenerateInput(const v1::GenerateRequest& request, absl::Time deadline,
                             int64_t max_slot_elements, GenerateInput* out,
                             const SlotHandleFetcher* handles) {
  GenerateInput& input = *out;
  input = GenerateInput();
  // Every handle of the request in one store round trip, before anything is decoded.
  std::vector<const v1::SlotHandle*> wanted;
  std::vector<std::string> where;
  for (int i = 0; i < request.context_size(); ++i) {
    if (request.context(i).part_case() != v1::ContextPart::kHandle) continue;
    wanted.push_back(&request.context(i).handle());
    where.push_back(absl::StrCat("context[", i, "].handle"));
    if (wanted.back()->key().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where.back(), ".key is empty"));
    }
  }
  std::vector<v1::MemorySlots> fetched;
  if (!wanted.empty()) {
    if (handles == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          where.front(), ": this decoder has no slot store (start it with --slot_store); send "
                         "the slots inline"));
    }
    ASSIGN_OR_RETURN(fetched, handles->Fetch(wanted, where));
  }
  input.context.reserve(request.context_size());
  size_t next_handle = 0;
  for (int i = 0; i < request.context_size(); ++i) {
    if (request.context(i).part_case() == v1::ContextPart::kHandle) {
      const size_t h = next_handle++;
      RETURN_IF_ERROR(CheckHandle(*wanted[h], fetched[h], where[h]));
      ASSIGN_OR_RETURN(ContextInput part, DecodeSlots(fetched[h], where[h], max_slot_elements));
      input.context.push_back(std::move(part));
      continue;
    }
    ASSIGN_OR_RETURN(ContextInput part, DecodePart(request.context(i), i, max_slot_elements));
    input.context.push_back(std::move(part));
  }
  input.prompt = request.prompt();
  input.prompt_ids.assign(request.prompt_ids().ids().begin(), request.prompt_ids().ids().end());
  input.template_name = request.template_name();
  const v1::SamplingParams& sampling = request.sampling();
  input.params.sampling.temperature = sampling.temperature();
  input.params.sampling.top_k = sampling.top_k();
  input.params.sampling.top_p = sampling.top_p() == 0.0f ? 1.0f : sampling.top_p();
  if (sampling.has_seed()) input.params.sampling.seed = sampling.seed();
  input.params.max_new_tokens = request.max_new_tokens();
  input.params.stop.assign(request.stop().begin(), request.stop().end());
  input.ignore_eos = request.ignore_eos();
  input.skip_prefix_cache = request.skip_prefix_cache();
  input.deadline = deadline;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EnqueueRequest(Engine& engine, const v1::GenerateRequest& request,
                                        absl::Time deadline, int64_t max_slot_elements,
                                        const SlotHandleFetcher* handles, GenerationSink sink) {
  GenerateInput input;
  RETURN_IF_ERROR(ToGenerateInput(request, deadline, max_slot_elements, &input, handles));
  return engine.Enqueue(std::move(input), std::move(sink));
}

v1::FinishReason ToProtoFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
      return v1::EOS;
    case FinishReason::kLength:
      return v1::LENGTH;
    case FinishReason::kStop:
      return v1::STOP;
    default:
      return v1::FINISH_REASON_UNSPECIFIED;
  }
}

void ToProtoUsage(const GenerationUsage& usage, v1::GenerateUsage* out) {
  out->set_slot_tokens(usage.slot_tokens);
  out->set_prompt_tokens(usage.prompt_tokens);
  out->set_generated_tokens(usage.generated_tokens);
  out->set_uncompressed_context_tokens(usage.uncompressed_context_tokens);
  out->set_queue_seconds(usage.queue_seconds);
  out->set_time_to_first_token_seconds(usage.time_to_first_token_seconds);
  out->set_total_seconds(usage.total_seconds);
  out->set_kv_cache_bytes(usage.kv_cache_bytes);
  out->set_cached_positions(usage.cached_positions);
}

v1::DecoderInfo MakeDecoderInfo(const SlotDecoder& model, const EngineOptions& options,
                                const ServerDescription& server) {
  const ModelConfig& config = model.config();
  v1::DecoderInfo info;
  info.set_base_model(BaseName(server.model_dir));
  info.set_architecture(config.architecture);
  info.set_adapter(BaseName(model.adapter_path()));
  info.set_accepted_encoder_id(model.accepted_encoder_id());
  info.set_hidden_size(config.hidden_size);
  info.set_vocab_size(config.vocab_size);
  info.set_mem_size(model.mem_size());
  info.set_slot_kind(model.slot_kind() == SlotKind::kKv ? v1::KV : v1::EMBEDDING);
  for (const AcceptedEncoder& e : model.accepted_encoders()) {
    v1::AcceptedEncoder* out = info.add_accepted_encoders();
    out->set_encoder_id(e.encoder_id);
    out->set_slot_kind(e.kind == SlotKind::kKv ? v1::KV : v1::EMBEDDING);
    out->set_mem_size(e.mem_size);
    out->set_adapter(BaseName(e.adapter_path));
  }
  info.set_max_context_tokens(options.ContextLimit(config.max_position_embeddings));
  info.set_max_new_tokens(options.max_new_tokens);
  for (const std::string& name : PromptTemplateNames()) info.add_templates(name);
  std::optional<DType> dtype = FromScalarType(model.transformer().dtype());
  info.set_compute_dtype(dtype ? ToProtoDataType(*dtype) : v1::DATA_TYPE_UNSPECIFIED);
  info.set_device(server.device);
  info.set_version(server.version);
  info.set_max_message_bytes(server.max_message_bytes);
  info.set_max_running(options.max_running);
  info.set_max_kv_tokens(options.KvLimit());
  info.set_slot_store(server.slot_store);
  return info;
}

}  // namespace icae::decoder
