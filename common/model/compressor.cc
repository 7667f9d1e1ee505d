#include "common/model/compressor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/fingerprint.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"

namespace icae {

absl::Status ValidateTokenIds(absl::Span<const int> ids, int vocab_size, absl::string_view what) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<std::unique_ptr<Compressor>> LoadCross(const std::string& model_dir,
                                                      const std::string& package,
                                                      const Runtime& runtime) {
  ASSIGN_OR_RETURN(CrossEncoder cross, LoadCrossEncoder(package));
  std::string dir = model_dir;
  std::string fingerprint;
  if (!dir.empty()) {
    ASSIGN_OR_RETURN(fingerprint, BaseModelFingerprint(dir));
  }
  // Given nothing, or the decoder base the package writes for (what a command that loads both
  // sides holds), the package's own encoder model serves.
  if (dir.empty() || fingerprint == cross.config.decoder_fingerprint) {
    dir = cross.encoder_model_dir();
    ASSIGN_OR_RETURN(fingerprint, BaseModelFingerprint(dir));
  }
  if (fingerprint != cross.config.encoder_fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        package, " was trained with the encoder model whose fingerprint is ",
        cross.config.encoder_fingerprint, ", but ", dir, " has ", fingerprint));
  }
  if (!cross.config.encoder_weights_sha256.empty()) {
    ASSIGN_OR_RETURN(std::string weights, ModelWeightsSha256(dir));
    if (weights != cross.config.encoder_weights_sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          package, " was trained with encoder weights whose sha256 is ",
          cross.config.encoder_weights_sha256, ", but ", dir, "'s are ", weights));
    }
  }
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  if (config.hidden_size != cross.config.encoder_hidden) {
    return absl::InvalidArgumentError(
        absl::StrCat(package, ": encoder_hidden_size ", cross.config.encoder_hidden, " but ",
                     dir, " has hidden_size ", config.hidden_size));
  }
  return Compressor::FromCross(dir, std::move(cross), runtime);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Compressor>> Compressor::FromCross(const std::string& model_dir,
                                                                  CrossEncoder cross,
                                                                  const Runtime& runtime) {
  std::unique_ptr<Compressor> compressor(new Compressor());
  ASSIGN_OR_RETURN(compressor->transformer_, Transformer::Load(model_dir, runtime));
  compressor->model_dir_ = model_dir;
  compressor->encoder_id_ = cross.encoder_id();
  compressor->adapter_config_ = cross.AsAdapterConfig();
  compressor->adapter_path_ = cross.path;
  compressor->slot_width_ = cross.config.decoder_hidden;
  compressor->decoder_fingerprint_ = cross.config.decoder_fingerprint;
  compressor->projector_kind_ = cross.config.projector;
  RETURN_IF_ERROR(CatchTorch("loading the cross encoder", [&]() -> absl::Status {
    compressor->memory_rows_ = cross.memory_rows.to(runtime.device, runtime.dtype).contiguous();
    for (const at::Tensor& p : cross.projector) {
      compressor->projector_.push_back(p.to(runtime.device, runtime.dtype).contiguous());
    }
    return absl::OkStatus();
  }));
  return compressor;
}

absl::StatusOr<std::unique_ptr<Compressor>> Compressor::Load(const std::string& model_dir,
                                                             const std::string& adapter_path,
                                                             const Runtime& runtime) {
  if (IsCrossEncoderPackage(adapter_path)) return LoadCross(model_dir, adapter_path, runtime);
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  ASSIGN_OR_RETURN(Adapter adapter, LoadAdapter(adapter_path, config, /*with_lora=*/true));
  std::unique_ptr<Compressor> compressor(new Compressor());
  ASSIGN_OR_RETURN(compressor->transformer_, Transformer::Load(model_dir, runtime, &adapter));
  ASSIGN_OR_RETURN(std::string base_fingerprint, BaseModelFingerprint(model_dir));
  compressor->model_dir_ = model_dir;
  compressor->encoder_id_ = EncoderId(base_fingerprint, adapter.fingerprint);
  compressor->slot_width_ = config.hidden_size;
  compressor->decoder_fingerprint_ = base_fingerprint;
  compressor->adapter_config_ = adapter.config;
  compressor->adapter_path_ = adapter.path;
  compressor->memory_rows_ =
      adapter.MemoryEmbeddings().to(runtime.device, runtime.dtype).contiguous();
  return compressor;
}

absl::StatusOr<at::Tensor> Compressor::CompressSegments(
    absl::Span<const std::vector<int>> segments) const {
  if (segments.empty()) return absl::InvalidArgumentError("no segments to compress");
  const int vocab = config().vocab_size;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("segment ", i, " is empty"));
    }
    RETURN_IF_ERROR(ValidateTokenIds(segments[i], vocab, absl::StrCat("segment ", i)));
  }
  return CatchTorch("compressing", [&]() -> absl::StatusOr<at::Tensor> {
    c10::InferenceMode guard;
    at::Tensor slots = EncodeSegmentBatch(*transformer_, memory_rows_, segments,
                                          adapter_config_.memory_positions, nullptr, slot_kind());
    return is_cross() ? ProjectSlots(projector_kind_, projector_, slots) : slots;
  });
}

std::vector<int64_t> MemoryPositionIds(int64_t len, int64_t mem, MemoryPositions layout) {
  std::vector<int64_t> ids(mem);
  for (int64_t j = 0; j < mem; ++j) {
    ids[j] = layout == MemoryPositions::kUniform ? (j + 1) * len / mem : len + j;
  }
  return ids;
}

at::Tensor EncodeSegmentBatch(const Transformer& model, const at::Tensor& memory_rows,
                              absl::Span<const std::vector<int>> segments, MemoryPositions layout,
                              const LoraWeights* lora, SlotKind kind) {
  const int64_t batch = segments.size(), mem = memory_rows.size(0);
  int64_t longest = 0;
  bool equal = true;
  for (const std::vector<int>& s : segments) {
    equal = equal && (longest == 0 || static_cast<int64_t>(s.size()) == longest);
    longest = std::max<int64_t>(longest, s.size());
  }
  const int64_t width = longest + mem;
  // Right padding: causal attention already keeps every real position from seeing the padding
  // after it, so no key mask is needed.
  std::vector<int64_t> ids(batch * longest, 0);
  for (int64_t b = 0; b < batch; ++b) {
    std::copy(segments[b].begin(), segments[b].end(), ids.begin() + b * longest);
  }
  const at::Device device = model.device();
  at::Tensor id_tensor =
      at::tensor(ids, at::TensorOptions().dtype(at::kLong)).view({batch, longest}).to(device);
  at::Tensor token_embeds = model.Embed(id_tensor);  // [batch, longest, hidden]
  at::Tensor memory = memory_rows.to(device, model.dtype());
  at::Tensor embeds;
  if (equal) {
    embeds = at::cat({token_embeds, memory.unsqueeze(0).expand({batch, mem, memory.size(1)})}, 1);
  } else {
    std::vector<at::Tensor> rows;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = segments[b].size();
      std::vector<at::Tensor> parts = {token_embeds[b].narrow(0, 0, len), memory};
      if (len < longest) parts.push_back(at::zeros({longest - len, memory.size(1)}, memory.options()));
      rows.push_back(at::cat(parts, 0));
    }
    embeds = at::stack(rows, 0);  // [batch, width, hidden]
  }
  // Token positions 0 .. len - 1, then the memory rows' positions; padding continues from there.
  std::vector<int64_t> positions(batch * width);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = segments[b].size();
    int64_t* row = positions.data() + b * width;
    for (int64_t i = 0; i < len; ++i) row[i] = i;
    const std::vector<int64_t> memory_ids = MemoryPositionIds(len, mem, layout);
    std::copy(memory_ids.begin(), memory_ids.end(), row + len);
    for (int64_t i = len + mem; i < width; ++i) row[i] = i;
  }
  at::Tensor position_tensor =
      at::tensor(positions, at::TensorOptions().dtype(at::kLong)).view({batch, width}).to(device);
  if (kind == SlotKind::kKv) {
    LayerKv kv;
    model.Forward(embeds, position_tensor, {}, lora, nullptr, &kv);
    // Per layer [batch, kv_heads, width, d] -> [batch, layers, 2, kv_heads, width, d], then the
    // memory positions of each row.
    std::vector<at::Tensor> layers;
    for (size_t l = 0; l < kv.keys.size(); ++l) {
      layers.push_back(at::stack({kv.keys[l], kv.values[l]}, 1));
    }
    at::Tensor all = at::stack(layers, 1);
    if (equal) return all.narrow(4, longest, mem);
    std::vector<at::Tensor> slots;
    for (int64_t b = 0; b < batch; ++b) {
      slots.push_back(all[b].narrow(3, static_cast<int64_t>(segments[b].size()), mem));
    }
    return at::stack(slots, 0);
  }
  // Only the memory rows leave the encoder: its last layer computes no other.
  std::vector<int64_t> keep(batch * mem);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t first = static_cast<int64_t>(segments[b].size());  // Its memory rows follow.
    for (int64_t j = 0; j < mem; ++j) keep[b * mem + j] = first + j;
  }
  at::Tensor keep_rows =
      at::tensor(keep, at::TensorOptions().dtype(at::kLong)).view({batch, mem}).to(device);
  return model.Forward(embeds, position_tensor, {}, lora, nullptr, nullptr,
                       keep_rows);  // [batch, mem, hidden]
}

at::Tensor JoinSegmentSlots(const at::Tensor& slots, SlotKind kind) {
  if (kind == SlotKind::kKv) {
    // [segments, layers, 2, kv_heads, mem, d] -> [layers, 2, kv_heads, segments * mem, d].
    at::Tensor t = slots.permute({1, 2, 3, 0, 4, 5});
    return t.reshape({t.size(0), t.size(1), t.size(2), -1, t.size(5)});
  }
  return slots.reshape({-1, slots.size(2)});
}

absl::StatusOr<at::Tensor> Compressor::CompressSpan(const std::vector<int>& ids) const {
  if (ids.empty()) return absl::InvalidArgumentError("span is empty");
  SegmentPlan plan = PlanSegments(static_cast<int>(ids.size()), mem_size(), compression_rate());
  std::vector<std::vector<int>> segments;
  for (const auto& [begin, end] : plan.ranges) {
    segments.emplace_back(ids.begin() + begin, ids.begin() + end);
  }
  ASSIGN_OR_RETURN(at::Tensor slots, CompressSegments(segments));
  return CatchTorch("compressing", [&]() -> absl::StatusOr<at::Tensor> {
    return JoinSegmentSlots(slots, slot_kind());
  });
}

}  // namespace icae
