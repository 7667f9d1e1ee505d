#include "encoder_service/server/proto_convert.h"

#include "absl/strings/str_cat.h"
#include "common/codec/proto_dtype.h"

namespace icae::encoder {

v1::SlotKind ToProtoSlotKind(SlotKind kind) {
  return kind == SlotKind::kKv ? v1::KV : v1::EMBEDDING;
}

absl::StatusOr<EncodeRequest> FromProto(const v1::CompressRequest& request, absl::Time deadline) {
  EncodeRequest out;
  switch (request.slot_dtype()) {
    case v1::DATA_TYPE_UNSPECIFIED:
      break;
    case v1::FLOAT32:
      out.slot_dtype = DType::kFloat32;
      break;
    case v1::BFLOAT16:
      out.slot_dtype = DType::kBFloat16;
      break;
    case v1::FLOAT16:
      out.slot_dtype = DType::kFloat16;
      break;
    case v1::INT8:
      out.slot_dtype = DType::kInt8;
      break;
    default: {
      const v1::DataType dtype = request.slot_dtype();
      const std::string name = v1::DataType_IsValid(dtype) ? v1::DataType_Name(dtype) : "unknown";
      return absl::InvalidArgumentError(
          absl::StrCat("slot_dtype: ", name, " (", static_cast<int>(dtype),
                       ") is not a slot dtype; use FLOAT32, BFLOAT16, FLOAT16 or INT8"));
    }
  }
  out.bypass_cache = request.bypass_cache();
  out.want_stored = request.return_handles();
  out.deadline = deadline;
  out.spans.resize(request.spans_size());
  for (int i = 0; i < request.spans_size(); ++i) {
    const v1::Span& span = request.spans(i);
    SpanInput& in = out.spans[i];
    in.id = span.id();
    switch (span.content_case()) {
      case v1::Span::kText:
        in.kind = SpanInput::Kind::kText;
        in.text = span.text();
        break;
      case v1::Span::kTokenIds:
        in.kind = SpanInput::Kind::kTokenIds;
        in.token_ids.assign(span.token_ids().ids().begin(), span.token_ids().ids().end());
        break;
      case v1::Span::CONTENT_NOT_SET:
        in.kind = SpanInput::Kind::kUnset;
        break;
    }
  }
  return out;
}

void FillMemorySlots(const SlotBlock& slots, const EngineModelInfo& info, int tokens, int segments,
                     v1::MemorySlots* out, bool with_data) {
  v1::Tensor* tensor = out->mutable_slots();
  tensor->set_dtype(ToProtoDataType(slots.dtype));
  for (int64_t d : info.slots.Shape(slots.num_slots)) tensor->add_shape(d);
  if (slots.data != nullptr && with_data) tensor->set_data(*slots.data);
  if (slots.dtype == DType::kInt8) {
    v1::Tensor* scale = tensor->mutable_scale();
    scale->set_dtype(v1::FLOAT32);
    for (int64_t d : info.slots.ScaleShape(slots.num_slots)) scale->add_shape(d);
    if (slots.scales != nullptr) scale->set_data(*slots.scales);
  }
  out->set_kind(ToProtoSlotKind(info.slots.kind));
  out->set_encoder_id(info.encoder_id);
  out->set_source_tokens(tokens);
  out->set_num_segments(segments);
  out->set_mem_size(info.mem_size);
}

void ToProto(const EncodeResult& result, const EngineModelInfo& info, bool handles,
             v1::CompressResponse* response, bool with_data) {
  v1::CompressUsage* usage = response->mutable_usage();
  response->mutable_spans()->Reserve(static_cast<int>(result.spans.size()));
  for (const SpanResult& span : result.spans) {
    v1::CompressedSpan* out = response->add_spans();
    out->set_id(span.id);
    if (handles && span.stored) {
      v1::SlotHandle* handle = out->mutable_handle();
      handle->set_key(span.store_key);
      handle->set_encoder_id(info.encoder_id);
      handle->set_kind(ToProtoSlotKind(info.slots.kind));
      handle->set_num_slots(static_cast<int32_t>(span.slots.num_slots));
      handle->set_source_tokens(span.tokens);
      handle->set_dtype(ToProtoDataType(span.slots.dtype));
      handle->set_bytes(span.slots.bytes());
      handle->set_num_segments(span.segments);
      handle->set_mem_size(info.mem_size);
    } else {
      FillMemorySlots(span.slots, info, span.tokens, span.segments, out->mutable_slots(),
                      with_data);
    }
    v1::SpanUsage* span_usage = out->mutable_usage();
    span_usage->set_tokens(span.tokens);
    span_usage->set_segments(span.segments);
    span_usage->set_slots(static_cast<int32_t>(span.slots.num_slots));
    span_usage->set_cache_hit(span.cache_hit);
    span_usage->set_store_hit(span.store_hit);

    usage->set_spans(usage->spans() + 1);
    usage->set_tokens(usage->tokens() + span.tokens);
    usage->set_segments(usage->segments() + span.segments);
    usage->set_slots(usage->slots() + span.slots.num_slots);
    if (span.cache_hit) usage->set_cache_hits(usage->cache_hits() + 1);
    if (span.store_hit) usage->set_store_hits(usage->store_hits() + 1);
  }
  usage->set_queue_seconds(result.queue_seconds);
  usage->set_compute_seconds(result.compute_seconds);
}

void FillEncoderInfo(const EngineModelInfo& model, const EngineOptions& options,
                     const ServerInfo& server, v1::EncoderInfo* info) {
  info->set_base_model(model.base_model);
  info->set_architecture(model.architecture);
  info->set_adapter(model.adapter);
  info->set_encoder_id(model.encoder_id);
  info->set_hidden_size(model.hidden_size);
  info->set_slot_kind(ToProtoSlotKind(model.slots.kind));
  info->set_encoder_kind(model.cross ? v1::ENCODER_KIND_CROSS : v1::ENCODER_KIND_ICAE);
  info->set_decoder_base_fingerprint(model.decoder_base_fingerprint);
  info->set_encoder_hidden_size(model.encoder_hidden_size);
  info->set_vocab_size(model.vocab_size);
  info->set_mem_size(model.mem_size);
  info->set_compression_rate(model.compression_rate);
  info->set_max_input_tokens(options.max_input_tokens);
  info->set_max_spans(options.max_spans);
  info->set_compute_dtype(ToProtoDataType(model.compute_dtype));
  for (v1::DataType dtype : kSlotDataTypes) info->add_slot_dtypes(dtype);
  info->set_device(model.device);
  info->set_version(server.version);
  info->set_max_message_bytes(server.max_message_bytes);
  info->set_max_batch_segments(options.max_batch_segments);
  info->set_max_batch_tokens(options.max_batch_tokens);
  info->set_max_queue_segments(options.max_queue_segments);
  info->set_cache_capacity_bytes(options.cache_bytes);
  info->set_slot_store(server.slot_store);
  info->set_slot_store_ttl_seconds(server.slot_store_ttl_seconds);
}

}  // namespace icae::encoder
