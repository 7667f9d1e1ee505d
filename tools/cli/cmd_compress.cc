// icae compress --model DIR --adapter PATH (--token-ids IDS | --text STR | --file F) --out FILE
// Writes `slots` ([n_slots, hidden], or KV [layers, 2, kv_heads, n_slots, head_dim]) float32 with
// the MemorySlots fields as metadata.
#include <iostream>

#include "common/io/slots_file.h"
#include "common/io/tokenizer.h"
#include "common/model/compressor.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "tools/cli/cli.h"
#include "tools/cli/input_text.h"
#include "tools/cli/model_flags.h"
#include "tools/cli/remote_compress.h"

namespace icae::cli {

int RunCompress(const Args& args) {
  if (HasEncoderFlag(args)) return RunRemoteCompress(args);  // --encoder: the service does it
  const std::string cmd = "compress";
  FlagSet flags(
      "icae compress --model DIR --adapter PATH (--token-ids IDS | --text STR | --file F) --out F\n"
      "   or: icae compress --encoder HOST:PORT ... (through the encoder service; its flags: "
      "icae compress --encoder HOST:PORT --help)");
  ModelFlags model_flags;
  RegisterModelFlags(flags, &model_flags, /*with_adapter=*/true);
  SpanInput input;
  RegisterSpanFlags(flags, &input);
  std::string out;
  flags.String("out", &out, "output safetensors file with `slots` (its kind's wire shape)");
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (absl::Status s = ValidateSpanInput(flags, input); !s.ok()) {
    return UsageError(cmd, std::string(s.message()));
  }
  if (out.empty()) return UsageError(cmd, "--out is required");
  if (model_flags.adapter.empty()) return UsageError(cmd, "--adapter is required");
  std::vector<int> ids;
  std::string text;
  bool is_text = false;
  if (absl::Status s = ReadSpan(flags, input, &ids, &text, &is_text); !s.ok()) {
    return s.code() == absl::StatusCode::kInvalidArgument
               ? UsageError(cmd, std::string(s.message()))
               : Failure(cmd, s);
  }
  Runtime runtime;
  if (int c = PrepareRuntime(cmd, model_flags, &runtime); c != kExitOk) return c;
  if (is_text) {
    auto tokenizer = Tokenizer::LoadFromModelDir(model_flags.model);
    if (!tokenizer.ok()) return Failure(cmd, tokenizer.status());
    auto encoded = (*tokenizer)->Encode(text, /*add_bos=*/true);
    if (!encoded.ok()) return Failure(cmd, encoded.status());
    ids = *std::move(encoded);
  }
  if (ids.empty()) return UsageError(cmd, "the span is empty");

  auto compressor = Compressor::Load(model_flags.model, model_flags.adapter, runtime);
  if (!compressor.ok()) return Failure(cmd, compressor.status());
  auto slots = (*compressor)->CompressSpan(ids);
  if (!slots.ok()) {
    return slots.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError(cmd, std::string(slots.status().message()))
               : Failure(cmd, slots.status());
  }
  SlotsFile file;
  file.encoder_id = (*compressor)->encoder_id();
  file.source_tokens = static_cast<int>(ids.size());
  file.mem_size = (*compressor)->mem_size();
  file.num_segments =
      PlanSegments(file.source_tokens, file.mem_size, (*compressor)->compression_rate())
          .num_segments;
  absl::Status status = CatchTorch("saving slots", [&]() -> absl::Status {
    at::Tensor cpu = slots->to(at::kCPU, at::kFloat).contiguous();
    file.kind = (*compressor)->slot_kind();
    file.shape = cpu.sizes().vec();
    file.data.assign(static_cast<const char*>(cpu.data_ptr()), cpu.numel() * sizeof(float));
    return WriteSlotsFile(out, file);
  });
  if (!status.ok()) return Failure(cmd, status);
  std::cerr << "compressed " << ids.size() << " tokens into " << file.num_slots() << " slots ("
            << file.num_segments << " segments)\n";
  return kExitOk;
}

}  // namespace icae::cli
