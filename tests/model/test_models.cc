#include "tests/model/test_models.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_replace.h"
#include "common/io/mapped_file.h"
#include "common/model/ops.h"
#include "common/model/tensor_io.h"
#include "tests/util/test_util.h"

namespace icae::testing {

at::Tensor Expected(const std::string& fixture, const std::string& name) {
  static std::map<std::string, std::vector<std::pair<std::string, at::Tensor>>> cache;
  auto it = cache.find(fixture);
  if (it == cache.end()) {
    auto tensors = ReadAllTensors(TestData(fixture + "/expected.safetensors"));
    EXPECT_TRUE(tensors.ok()) << tensors.status();
    std::vector<std::pair<std::string, at::Tensor>> loaded;
    if (tensors.ok()) loaded = *std::move(tensors);
    it = cache.emplace(fixture, std::move(loaded)).first;
  }
  for (const auto& [n, t] : it->second) {
    if (n == name) return t;
  }
  ADD_FAILURE() << "fixture " << fixture << " has no tensor " << name;
  return at::Tensor();
}

std::vector<int> ToIds(const at::Tensor& t) {
  at::Tensor flat = t.to(at::kLong).contiguous().view({-1});
  return std::vector<int>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  // Either side may live on the test device; the difference is taken on the CPU in float64.
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

Runtime TestRuntime() {
  RuntimeOptions options;
  if (const char* device = std::getenv("ICAE_TEST_DEVICE"); device != nullptr && *device) {
    options.device = device;
  }
  auto runtime = ResolveRuntime(options);
  EXPECT_OK(runtime) << "ICAE_TEST_DEVICE";
  return runtime.ok() ? *runtime : Runtime{};
}

std::unique_ptr<SlotDecoder> LoadDecoder(const std::string& dir) {
  auto decoder = SlotDecoder::Load(dir, TestData("tiny-icae"), Runtime{});
  EXPECT_OK(decoder);
  return decoder.ok() ? *std::move(decoder) : nullptr;
}

decoder::LocalInput RawInput(const SlotDecoder& decoder, std::vector<int> ids, int max_new,
                             SamplingParams sampling) {
  decoder::LocalInput input;
  input.tmpl = PromptTemplate::kRaw;
  input.prompt_ids = std::move(ids);
  input.params.max_new_tokens = max_new;
  input.params.sampling = sampling;
  return input;
}

void CopyDir(const std::string& src, const std::string& dst) {
  std::filesystem::create_directories(dst);
  for (const auto& entry : std::filesystem::directory_iterator(src)) {
    std::filesystem::copy(entry.path(), dst + "/" + entry.path().filename().string(),
                          std::filesystem::copy_options::overwrite_existing);
  }
}

void WriteWindowedMistral(const std::string& dst, int window) {
  CopyDir(TestData("tiny-mistral"), dst);
  absl::StatusOr<std::string> config = ReadFileToString(TestData("tiny-mistral/config.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string field = "\"sliding_window\": null";
  ASSERT_NE(config->find(field), std::string::npos) << "tiny-mistral's config changed";
  std::ofstream(dst + "/config.json") << absl::StrReplaceAll(
      *config, {{field, "\"sliding_window\": " + std::to_string(window)}});
}

void ForEachDecodeModel(const std::function<void(const Transformer&, bool kernels_on)>& body) {
  ::icae::testing::ScratchDir windowed;
  WriteWindowedMistral(windowed.path(), 6);
  for (const std::string& dir : {TestData("tiny-llama"), TestData("tiny-mistral"),
                                 windowed.path()}) {
    for (bool kernels_on : {true, false}) {
      SCOPED_TRACE(dir + (kernels_on ? " kernels" : " aten"));
      SetCpuKernelsEnabled(kernels_on);
      auto model = Transformer::Load(dir, Runtime{});
      EXPECT_TRUE(model.ok()) << model.status();
      if (!model.ok()) continue;
      c10::InferenceMode guard;
      body(**model, kernels_on);
    }
  }
  SetCpuKernelsEnabled(true);
}

}  // namespace icae::testing
