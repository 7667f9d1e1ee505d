// The wire tensor codec on arbitrary icae.v1.Tensor bytes: DecodeTensor either refuses with
// INVALID_ARGUMENT or returns a tensor of exactly the message's shape whose re-encoding gives
// back the same bytes (round trip), within the element cap.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>

#include "common/codec/tensor_codec.h"
#include "icae/v1/tensor.pb.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace icae;
  fuzz::QuietProtobuf();
  constexpr int64_t kMaxElements = 1 << 16;
  v1::Tensor proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<at::Tensor> tensor = DecodeTensor(proto, kMaxElements);
  if (!tensor.ok()) {
    fuzz::Require(tensor.status().code() == absl::StatusCode::kInvalidArgument,
                  "DecodeTensor refused with a code other than INVALID_ARGUMENT",
                  tensor.status().ToString());
    return 0;
  }
  fuzz::Require(tensor->numel() <= kMaxElements, "element cap passed");
  fuzz::Require(tensor->dim() == proto.shape_size(), "rank differs from the message");
  for (int d = 0; d < proto.shape_size(); ++d)
    fuzz::Require(tensor->size(d) == proto.shape(d), "shape differs from the message");
  v1::Tensor again;
  absl::Status encoded = EncodeTensor(*tensor, proto.dtype(), &again);
  fuzz::Require(encoded.ok(), "a decoded tensor does not encode", encoded.ToString());
  fuzz::Require(again.data() == proto.data(), "round trip changed the bytes");
  return 0;
}
