// icae_fuzz_seeds OUT_DIR: writes the seed corpora of the fuzz targets into OUT_DIR/<target>/:
// valid inputs of each kind (every dtype, the templates, text and ids, sampling and stop strings)
// from which libFuzzer mutates. Run once (tools/fuzz/run.sh --seed); the output is committed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/io/safetensors_writer.h"
#include "common/model/slot_decoder.h"
#include "common/model/runtime_options.h"
#include "common/codec/tensor_codec.h"
#include "icae/v1/decoder.pb.h"
#include "icae/v1/encoder.pb.h"

namespace icae {
namespace {

void Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

const char* kTexts[] = {
    "The quick brown fox jumps over the lazy dog.",
    "In 1887 the railway reached the valley; by 1900 the town had doubled.",
    "Zürich, Kraków and São Paulo — naïve café façades. 東京 🚀",
    "",
    "  leading and trailing spaces  \n\tand tabs",
};

}  // namespace
}  // namespace icae

int main(int argc, char** argv) {
  using namespace icae;
  if (argc != 3) {
    std::fprintf(stderr, "usage: icae_fuzz_seeds OUT_DIR DEMO_DIR\n");
    return 2;
  }
  const std::string out = argv[1], demo = argv[2];
  auto model = SlotDecoder::Load(demo + "/base", demo + "/icae", Runtime{});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const int hidden = (*model)->config().hidden_size, mem = (*model)->mem_size();

  // Tensors: each dtype, scalars, empty and 2-D shapes.
  int n = 0;
  for (at::ScalarType t : {at::kFloat, at::kBFloat16, at::kHalf, at::kInt, at::kLong}) {
    for (const std::vector<int64_t>& shape :
         std::vector<std::vector<int64_t>>{{}, {0}, {3}, {2, 5}, {1, 2, 3}}) {
      at::Tensor x = at::randn(shape).mul(100).to(t);
      v1::Tensor proto;
      const v1::DataType wire = t == at::kFloat      ? v1::FLOAT32
                                : t == at::kBFloat16 ? v1::BFLOAT16
                                : t == at::kHalf     ? v1::FLOAT16
                                : t == at::kInt      ? v1::INT32
                                                     : v1::INT64;
      if (!EncodeTensor(x, wire, &proto).ok()) continue;
      Write(out + "/fuzz_tensor_codec", "seed" + std::to_string(n++), proto.SerializeAsString());
    }
  }

  // Safetensors images: several tensors and metadata, and an empty one.
  for (int k = 0; k < 3; ++k) {
    SafetensorsWriter writer;
    writer.SetMetadata("format", "pt");
    for (int i = 0; i <= k; ++i) {
      std::string bytes(4 * (i + 1) * 3, static_cast<char>(i));
      (void)writer.Add("layer." + std::to_string(i) + ".weight", DType::kFloat32, {i + 1, 3}, bytes);
      (void)writer.Add("layer." + std::to_string(i) + ".bias", DType::kBFloat16, {3},
                       std::string(6, 'b'));
    }
    Write(out + "/fuzz_safetensors", "seed" + std::to_string(k), writer.Serialize());
  }

  // Tokenizer: texts.
  n = 0;
  for (const char* text : kTexts) Write(out + "/fuzz_tokenizer", "seed" + std::to_string(n++), text);

  // Compress requests: text spans, id spans, slot dtypes, cache bypass.
  n = 0;
  for (int variant = 0; variant < 4; ++variant) {
    v1::CompressRequest request;
    for (int i = 0; i < 3; ++i) {
      v1::Span* span = request.add_spans();
      span->set_id("doc-" + std::to_string(i));
      if ((variant + i) % 2 == 0) {
        span->set_text(kTexts[i]);
      } else {
        for (int id = 0; id < 40; ++id) span->mutable_token_ids()->add_ids(5 + 37 * id % 4000);
      }
    }
    request.set_slot_dtype(static_cast<v1::DataType>(variant % 4));
    request.set_bypass_cache(variant == 3);
    Write(out + "/fuzz_compress_request", "seed" + std::to_string(n++), request.SerializeAsString());
  }

  // Generate requests: slots of this decoder (float32 and bfloat16), text and id parts, each
  // template, a prompt and prompt ids, sampling, stop strings.
  n = 0;
  const char* templates[] = {"ae", "icae-v2-instruct", "icae-v1", "raw", ""};
  for (int variant = 0; variant < 5; ++variant) {
    v1::GenerateRequest request;
    v1::ContextPart* part = request.add_context();
    v1::MemorySlots* slots = part->mutable_slots();
    at::Tensor s = at::randn({mem, hidden});
    (void)EncodeTensor(s, variant % 2 ? v1::BFLOAT16 : v1::FLOAT32, slots->mutable_slots());
    slots->set_kind(v1::EMBEDDING);
    slots->set_encoder_id((*model)->accepted_encoder_id());
    slots->set_source_tokens(4 * mem);
    slots->set_num_segments(1);
    slots->set_mem_size(mem);
    if (variant >= 2) request.add_context()->set_text(kTexts[variant % 3]);
    if (variant >= 3)
      for (int id = 0; id < 10; ++id) request.add_context()->mutable_token_ids()->add_ids(7 + id);
    request.set_template_name(templates[variant]);
    if (variant == 1 || variant == 2) request.set_prompt("What is this about?");
    if (variant == 4) request.mutable_prompt_ids()->add_ids(42);
    request.set_max_new_tokens(variant * 7);
    request.mutable_sampling()->set_temperature(variant * 0.3f);
    request.mutable_sampling()->set_top_k(variant * 3);
    request.mutable_sampling()->set_top_p(variant == 2 ? 0.9f : 0.0f);
    if (variant == 3) request.mutable_sampling()->set_seed(7);
    if (variant == 4) request.add_stop("\n\n");
    request.set_request_id("r" + std::to_string(variant));
    request.set_ignore_eos(variant == 0);
    Write(out + "/fuzz_generate_request", "seed" + std::to_string(n++), request.SerializeAsString());
  }
  std::printf("seed corpora written under %s\n", out.c_str());
  return 0;
}
