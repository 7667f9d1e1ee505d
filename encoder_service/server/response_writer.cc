#include "encoder_service/server/response_writer.h"

#include <memory>
#include <string>
#include <vector>

#include "encoder_service/server/proto_convert.h"
#include "icae/v1/encoder.pb.h"

namespace icae::encoder {
namespace {

constexpr uint32_t kLengthDelimited = 2;

void PutVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

// Bytes of "field `field`, length-delimited, `length` bytes long" before the payload.
size_t HeaderSize(uint32_t field, uint64_t length) {
  return VarintSize((field << 3) | kLengthDelimited) + VarintSize(length);
}

void PutHeader(uint32_t field, uint64_t length, std::string* out) {
  PutVarint((field << 3) | kLengthDelimited, out);
  PutVarint(length, out);
}

void ReleaseShared(void* user_data) {
  delete static_cast<std::shared_ptr<const std::string>*>(user_data);
}

}  // namespace

int64_t WriteCompressResponse(const EncodeResult& result, const EngineModelInfo& info,
                              bool handles, grpc::ByteBuffer* out) {
  v1::CompressResponse response;
  ToProto(result, info, handles, &response, /*with_data=*/false);
  std::vector<grpc::Slice> slices;
  std::string pending;  // serialized bytes not yet in a slice
  int64_t referenced = 0;
  for (int i = 0; i < response.spans_size(); ++i) {
    v1::CompressedSpan& span = *response.mutable_spans(i);
    const std::shared_ptr<const std::string>& data = result.spans[i].slots.data;
    const bool inline_slots = span.has_slots();
    const size_t d = inline_slots && data != nullptr ? data->size() : 0;
    if (!inline_slots || d == 0) {  // a handle, or no payload: plain serialization
      PutHeader(1, span.ByteSizeLong(), &pending);
      span.AppendToString(&pending);
      continue;
    }
    // CompressedSpan{rest, slots: MemorySlots{rest, slots: Tensor{rest, data}}}, data last.
    v1::MemorySlots slots = std::move(*span.mutable_slots());
    span.clear_slots();
    v1::Tensor tensor = std::move(*slots.mutable_slots());
    slots.clear_slots();
    const size_t tensor_size = tensor.ByteSizeLong() + HeaderSize(3, d) + d;
    const size_t slots_size = slots.ByteSizeLong() + HeaderSize(1, tensor_size) + tensor_size;
    const size_t span_size = span.ByteSizeLong() + HeaderSize(2, slots_size) + slots_size;
    PutHeader(1, span_size, &pending);
    span.AppendToString(&pending);
    PutHeader(2, slots_size, &pending);
    slots.AppendToString(&pending);
    PutHeader(1, tensor_size, &pending);
    tensor.AppendToString(&pending);
    PutHeader(3, d, &pending);
    slices.emplace_back(pending);
    pending.clear();
    slices.emplace_back(const_cast<char*>(data->data()), d, &ReleaseShared,
                        new std::shared_ptr<const std::string>(data));
    referenced += static_cast<int64_t>(d);
  }
  if (response.has_usage()) {
    PutHeader(2, response.usage().ByteSizeLong(), &pending);
    response.usage().AppendToString(&pending);
  }
  if (!pending.empty()) slices.emplace_back(pending);
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  out->Swap(&buffer);
  return referenced;
}

}  // namespace icae::encoder
