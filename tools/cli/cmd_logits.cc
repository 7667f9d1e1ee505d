// icae logits --model DIR --token-ids 1,5,9 --out FILE
// Writes `logits` [T, vocab] float32 for every position of one causal forward pass.
#include "common/io/safetensors_writer.h"
#include "common/model/tensor_io.h"
#include "common/model/torch_status.h"
#include "common/model/transformer.h"
#include "tools/cli/cli.h"
#include "tools/cli/model_flags.h"

namespace icae::cli {

int RunLogits(const Args& args) {
  const std::string cmd = "logits";
  FlagSet flags("icae logits --model DIR --token-ids IDS --out FILE");
  ModelFlags model_flags;
  RegisterModelFlags(flags, &model_flags, /*with_adapter=*/false);
  std::string token_ids, out;
  flags.String("token_ids", &token_ids, "comma-separated token ids");
  flags.String("out", &out, "output safetensors file");
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  std::vector<int> ids;
  if (absl::Status s = ParseIntList(token_ids, "--token-ids", &ids); !s.ok()) {
    return UsageError(cmd, std::string(s.message()));
  }
  if (ids.empty()) return UsageError(cmd, "--token-ids is required");
  if (out.empty()) return UsageError(cmd, "--out is required");
  Runtime runtime;
  if (int c = PrepareRuntime(cmd, model_flags, &runtime); c != kExitOk) return c;

  auto model = Transformer::Load(model_flags.model, runtime);
  if (!model.ok()) return Failure(cmd, model.status());
  for (int id : ids) {
    if (id < 0 || id >= (*model)->config().vocab_size) {
      return UsageError(cmd,
                        "--token-ids: id " + std::to_string(id) + " is outside the vocabulary");
    }
  }
  absl::Status status = CatchTorch("logits", [&]() -> absl::Status {
    c10::InferenceMode guard;
    std::vector<int64_t> wide(ids.begin(), ids.end());
    at::Tensor id_tensor = at::tensor(wide, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
    at::Tensor positions = at::arange(id_tensor.size(1), at::kLong).unsqueeze(0);
    at::Tensor hidden = (*model)->Forward((*model)->Embed(id_tensor), positions);
    at::Tensor logits = (*model)->Logits(hidden)[0];  // [T, vocab]
    SafetensorsWriter writer;
    if (absl::Status s = AddTensor(writer, "logits", logits.to(at::kFloat)); !s.ok()) return s;
    return writer.WriteFile(out);
  });
  if (!status.ok()) return Failure(cmd, status);
  return kExitOk;
}

}  // namespace icae::cli
