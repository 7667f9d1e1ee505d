// Paths of the golden fixtures and helpers shared by the model tests.
#ifndef ICAE_TESTS_MODEL_TEST_MODELS_H_
#define ICAE_TESTS_MODEL_TEST_MODELS_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace icae::testing {

inline std::string TestData(const std::string& rel) {
  return std::string(ICAE_TESTDATA) + "/" + rel;
}

// A tensor from a fixture's expected.safetensors (CPU, stored dtype).
at::Tensor Expected(const std::string& fixture, const std::string& name);
std::vector<int> ToIds(const at::Tensor& t);
double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b);
// Copies a fixture directory's files into `dst` (created).
void CopyDir(const std::string& src, const std::string& dst);

}  // namespace icae::testing

#endif  // ICAE_TESTS_MODEL_TEST_MODELS_H_
