// icae eval --model DIR --adapter PATH --file TEXT [--span-tokens N] [--max-spans N] [--json OUT]
// Cuts a plain-text file into consecutive spans of N tokens (default: one segment, mem_size *
// rate) and reports autoencoding BLEU-4 and exact match (greedy, ae template) and the perplexity
// of each span's continuation given the span's text, its slots, or nothing.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "common/base/slot_kind.h"
#include "common/io/mapped_file.h"
#include "common/io/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/cli.h"
#include "tools/cli/eval_spans.h"
#include "tools/cli/model_flags.h"

namespace icae::cli {

int RunEval(const Args& args) {
  const std::string cmd = "eval";
  FlagSet flags(
      "icae eval --model DIR --adapter PATH --file TEXT [--span-tokens N] [--max-spans N] "
      "[--json OUT]");
  ModelFlags model_flags;
  RegisterModelFlags(flags, &model_flags, /*with_adapter=*/true);
  std::string file, json_out;
  int span_tokens = 0, max_spans = 0, batch = 8;
  flags.String("file", &file, "plain UTF-8 text to cut into spans");
  flags.Int("span-tokens", &span_tokens, "tokens per span (0 = one segment: mem_size * rate)");
  flags.Int("max-spans", &max_spans, "evaluate at most this many spans (0 = all)");
  flags.Int("batch", &batch, "spans decoded together");
  flags.String("json", &json_out, "also write the figures as a JSON object to this file");
  std::string slot_dtype;
  flags.String("slot-dtype", &slot_dtype,
               "send the slots through the wire codec as float32, bfloat16, float16 or int8 "
               "first (default: none, the compute dtype's slots)");
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (file.empty()) return UsageError(cmd, "--file is required");
  if (model_flags.adapter.empty()) return UsageError(cmd, "--adapter is required");
  if (span_tokens < 0) return UsageError(cmd, "--span-tokens must be >= 0");
  if (max_spans < 0) return UsageError(cmd, "--max-spans must be >= 0");
  if (batch <= 0) return UsageError(cmd, "--batch must be positive");
  std::optional<DType> wire;
  if (!slot_dtype.empty()) {
    wire = DTypeFromName(slot_dtype);
    if (!wire || !(IsFloating(*wire) || *wire == DType::kInt8)) {
      return UsageError(cmd, "--slot-dtype: expected float32, bfloat16, float16 or int8");
    }
  }
  Runtime runtime;
  if (int c = PrepareRuntime(cmd, model_flags, &runtime); c != kExitOk) return c;

  auto text = ReadFileToString(file);
  if (!text.ok()) return Failure(cmd, text.status());
  auto compressor = Compressor::Load(model_flags.model, model_flags.adapter, runtime);
  if (!compressor.ok()) return Failure(cmd, compressor.status());
  auto decoder = SlotDecoder::Load(model_flags.model, model_flags.adapter, runtime);
  if (!decoder.ok()) return Failure(cmd, decoder.status());
  if ((*decoder)->tokenizer() == nullptr) {
    return Failure(cmd, absl::FailedPreconditionError(
                            "the model directory has no tokenizer.model to cut the text"));
  }
  auto ids = EncodeLines(*(*decoder)->tokenizer(), *text);
  if (!ids.ok()) return Failure(cmd, ids.status());
  if (span_tokens == 0) span_tokens = (*compressor)->max_segment_tokens();
  auto spans = CutSpans(*ids, span_tokens, max_spans);
  if (spans.empty()) {
    return UsageError(cmd, absl::StrFormat("%s has %d tokens: too few for one span of %d plus its "
                                           "continuation",
                                           file, ids->size(), span_tokens));
  }
  auto result = EvaluateSpans(**compressor, **decoder, spans, batch, [](int done, int total) {
    std::fprintf(stderr, "\revaluated %d/%d spans", done, total);
    if (done == total) std::fputc('\n', stderr);
  }, wire);
  if (!result.ok()) return Failure(cmd, result.status());
  const EvalResult& r = *result;
  const double slot_gap = 100.0 * (r.ppl_slots / r.ppl_text - 1.0);
  std::printf("%-34s %s\n", "file", file.c_str());
  std::printf(
      "%-34s %d x %d tokens (%d slots each)\n", "spans", r.spans, r.span_tokens,
      (*compressor)->mem_size() * ((r.span_tokens + (*compressor)->max_segment_tokens() - 1) /
                                   (*compressor)->max_segment_tokens()));
  // Bytes a Compress response carries per 128 source tokens, in the wire dtype asked for (the
  // compute dtype by default; INT8 adds a float32 scale per row of the last dimension).
  const DType wire_dtype = wire.value_or(
      (*compressor)->transformer().dtype() == at::kBFloat16 ? DType::kBFloat16 : DType::kFloat32);
  const double row = (*compressor)->slot_kind() == SlotKind::kKv
                         ? (*compressor)->config().head_dim
                         : (*compressor)->slot_width();
  const double slot_bytes =
      static_cast<double>(r.slot_elements) *
      (ItemSize(wire_dtype) + (wire_dtype == DType::kInt8 ? 4.0 / row : 0.0)) * 128.0 /
      r.span_tokens;
  std::printf("%-34s %s, %.0f bytes per 128 tokens (%s)\n", "slots",
              std::string(SlotKindName((*compressor)->slot_kind())).c_str(), slot_bytes,
              std::string(DTypeName(wire_dtype)).c_str());
  if (r.first_scored > 1) {
    std::printf("%-34s from continuation token %d (KV slots predict no first token)\n",
                "continuation ppl scored", r.first_scored);
  }
  std::printf("%-34s %.4f\n", "autoencoding BLEU-4", r.bleu4);
  std::printf("%-34s %.4f (%d/%d)\n", "autoencoding exact match", r.exact_match,
              static_cast<int>(r.exact_match * r.spans + 0.5), r.spans);
  std::printf("%-34s %.3f\n", "continuation ppl | original text", r.ppl_text);
  std::printf("%-34s %.3f (%+.1f%% vs text)\n", "continuation ppl | slots", r.ppl_slots, slot_gap);
  std::printf("%-34s %.3f\n", "continuation ppl | no context", r.ppl_none);
  std::printf("%-34s %12s %12s %12s\n", "continuation ppl by position", "text", "slots",
              "none");
  for (const PositionBand& b : r.bands) {
    std::printf("%-34s %12.3f %12.3f %12.3f\n", absl::StrFormat("  %d..%d", b.first, b.last).c_str(),
                b.ppl_text, b.ppl_slots, b.ppl_none);
  }
  if (!json_out.empty()) {
    nlohmann::json bands = nlohmann::json::array();
    for (const PositionBand& b : r.bands) {
      bands.push_back({{"first", b.first},
                       {"last", b.last},
                       {"ppl_text", b.ppl_text},
                       {"ppl_slots", b.ppl_slots},
                       {"ppl_none", b.ppl_none}});
    }
    nlohmann::json j = {{"spans", r.spans},       {"span_tokens", r.span_tokens},
                        {"bleu4", r.bleu4},       {"exact_match", r.exact_match},
                        {"ppl_text", r.ppl_text}, {"ppl_slots", r.ppl_slots},
                        {"ppl_none", r.ppl_none},
                        {"slot_kind", std::string(SlotKindName((*compressor)->slot_kind()))},
                        {"slot_bytes_per_128_tokens", slot_bytes},
                        {"first_scored_token", r.first_scored},
                        {"slot_dtype", wire ? std::string(DTypeName(*wire)) : "compute"},
                        {"ppl_by_position", bands}};
    absl::Status s = WriteStringToFile(json_out, j.dump(2) + "\n");
    if (!s.ok()) return Failure(cmd, s);
  }
  return kExitOk;
}

}  // namespace icae::cli
