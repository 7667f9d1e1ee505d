// Paths of the golden fixtures and helpers shared by the model tests.
#ifndef ICAE_TESTS_MODEL_TEST_MODELS_H_
#define ICAE_TESTS_MODEL_TEST_MODELS_H_

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/model/runtime_options.h"
#include "common/model/sampler.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"
#include "decoder_service/engine/offline.h"

namespace icae::testing {

inline std::string TestData(const std::string& rel) {
  return std::string(ICAE_TESTDATA) + "/" + rel;
}

// The runtime the golden tests run on: float32 on $ICAE_TEST_DEVICE (default cpu; "cuda" on a
// GPU machine, tools/gpu/check.sh). A device ResolveRuntime refuses fails the test that asks.
Runtime TestRuntime();

// A tensor from a fixture's expected.safetensors (CPU, stored dtype).
at::Tensor Expected(const std::string& fixture, const std::string& name);
std::vector<int> ToIds(const at::Tensor& t);
double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b);
// The decoder of fixture `dir` with the tiny-icae adapter, on the CPU.
std::unique_ptr<SlotDecoder> LoadDecoder(const std::string& dir);
// A raw-template input of `ids` generating up to `max_new` tokens.
decoder::LocalInput RawInput(const SlotDecoder& decoder, std::vector<int> ids, int max_new,
                             SamplingParams sampling = {});
// Copies a fixture directory's files into `dst` (created).
void CopyDir(const std::string& src, const std::string& dst);
// tiny-mistral with a sliding window of `window` positions, written to `dst` (created).
void WriteWindowedMistral(const std::string& dst, int window);
// Runs `body` on each model the cached-decoding tests use (tiny-llama, tiny-mistral, tiny-mistral
// with a 6-position sliding window; float32 on the CPU) with the CPU kernels on and off, each
// traced and in inference mode; the kernels are on again afterwards.
void ForEachDecodeModel(const std::function<void(const Transformer&, bool kernels_on)>& body);

}  // namespace icae::testing

#endif  // ICAE_TESTS_MODEL_TEST_MODELS_H_
