// icae generate --model DIR [--adapter PATH] [--slots FILE ...] --template NAME
//               [--prompt STR | --prompt-ids IDS] [--max-new-tokens N]
//               [--temperature T --top-p P --top-k K --seed S] [--stop STR ...] [--print-ids]
// Streams the text to stdout as tokens arrive, or prints the generated ids with --print-ids.
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/dtype.h"
#include "common/io/slots_file.h"
#include "common/model/scalar_type.h"
#include "common/model/slot_decoder.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/offline.h"
#include "tools/cli/cli.h"
#include "tools/cli/generate_flags.h"
#include "tools/cli/model_flags.h"
#include "tools/cli/remote_generate.h"

namespace icae::cli {
namespace {

absl::StatusOr<ContextPart> LoadSlots(const std::string& path, const SlotDecoder& decoder) {
  absl::StatusOr<SlotsFile> file = ReadSlotsFile(path);
  if (!file.ok()) return file.status();
  if (!file->encoder_id.empty() && decoder.has_adapter() &&
      file->encoder_id != decoder.accepted_encoder_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": slots were made by encoder ", file->encoder_id,
                     " but this model and adapter are ", decoder.accepted_encoder_id()));
  }
  return CatchTorch("reading slots", [&]() -> absl::StatusOr<ContextPart> {
    ContextPart part;
    part.kind = file->kind;
    part.slots = at::from_blob(file->data.data(), file->shape,
                               at::TensorOptions().dtype(ToScalarType(file->dtype)))
                     .clone();
    return part;
  });
}

}  // namespace

int RunGenerate(const Args& args) {
  if (HasDecoderFlag(args)) return RunRemoteGenerate(args);  // --decoder: the service does it
  const std::string cmd = "generate";
  FlagSet flags(
      "icae generate --model DIR [--adapter PATH] [--slots FILE ...] --template NAME "
      "[--prompt STR | --prompt-ids IDS] [--max-new-tokens N] [--print-ids]\n"
      "   or: icae generate --decoder HOST:PORT ... (through the decoder service; its flags: "
      "icae generate --decoder HOST:PORT --help)");
  ModelFlags model_flags;
  RegisterModelFlags(flags, &model_flags, /*with_adapter=*/true);
  GenerateFlags gen;
  RegisterGenerateFlags(flags, &gen);
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  GenerateRequestSpec spec;
  if (absl::Status s = ResolveGenerateFlags(flags, gen, &spec); !s.ok()) {
    return UsageError(cmd, std::string(s.message()));
  }
  Runtime runtime;
  if (int c = PrepareRuntime(cmd, model_flags, &runtime); c != kExitOk) return c;

  auto decoder = SlotDecoder::Load(model_flags.model, model_flags.adapter, runtime);
  if (!decoder.ok()) return Failure(cmd, decoder.status());
  std::vector<ContextPart> context;
  for (const std::string& path : gen.slots) {
    auto part = LoadSlots(path, **decoder);
    if (!part.ok()) return Failure(cmd, part.status());
    context.push_back(*std::move(part));
  }
  std::vector<int> prompt_ids = spec.prompt_ids;
  if (!spec.prompt_text.empty()) {
    auto ids = (*decoder)->Tokenize(spec.prompt_text);
    if (!ids.ok()) return Failure(cmd, ids.status());
    prompt_ids = *std::move(ids);
  }
  auto tmpl = ParsePromptTemplate(spec.template_name);
  if (!tmpl.ok()) return UsageError(cmd, std::string(tmpl.status().message()));
  const bool print_ids = gen.print_ids || (*decoder)->tokenizer() == nullptr;
  decoder::OfflineOptions options;
  if (!print_ids) {
    options.on_token = [](size_t, int, const std::string& delta) {
      std::fwrite(delta.data(), 1, delta.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  std::vector<decoder::LocalInput> inputs(1);
  inputs[0].tmpl = *tmpl;
  inputs[0].parts = std::move(context);
  inputs[0].prompt_ids = std::move(prompt_ids);
  inputs[0].params = spec.params;
  auto out = decoder::GenerateOffline(**decoder, std::move(inputs), options);
  if (!out.ok()) {
    return out.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError(cmd, std::string(out.status().message()))
               : Failure(cmd, out.status());
  }
  if (print_ids) {
    std::cout << absl::StrJoin((*out)[0].ids, ",") << "\n";
  } else {
    std::cout << "\n";
  }
  std::cerr << "finish_reason=" << FinishReasonName((*out)[0].finish_reason)
            << " generated=" << (*out)[0].ids.size() << "\n";
  return kExitOk;
}

}  // namespace icae::cli
