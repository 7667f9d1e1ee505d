// The zero-copy Compress response: its bytes parse as exactly the message ToProto builds, for
// inline slots of every wire dtype (int8 with scales), handles, empty payloads and many spans;
// the payload slices point into the engine's buffers (no copy).
#include "encoder_service/server/response_writer.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <vector>

#include "encoder_service/server/proto_convert.h"

namespace icae::encoder {
namespace {

SlotBlock Block(DType dtype, int64_t slots, int64_t hidden, char fill) {
  SlotBlock block;
  block.dtype = dtype;
  block.num_slots = slots;
  block.data = std::make_shared<const std::string>(
      static_cast<size_t>(slots * hidden) * ItemSize(dtype), fill);
  if (dtype == DType::kInt8) {
    block.scales = std::make_shared<const std::string>(static_cast<size_t>(slots) * 4, 'S');
  }
  return block;
}

std::string Flatten(const grpc::ByteBuffer& buffer, std::vector<const void*>* slice_starts) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    slice_starts->push_back(s.begin());
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

TEST(ResponseWriterTest, ParsesAsToProtoWithThePayloadsByReference) {
  EngineModelInfo info;
  info.encoder_id = std::string(64, 'e');
  info.mem_size = 4;
  info.hidden_size = 64;
  info.slots.row = 64;
  EncodeResult result;
  result.queue_seconds = 0.25;
  result.compute_seconds = 1.5;
  const DType dtypes[] = {DType::kFloat32, DType::kBFloat16, DType::kInt8, DType::kFloat16};
  for (int i = 0; i < 7; ++i) {
    SpanResult span;
    span.id = "doc-" + std::to_string(i);
    // 300 slots of width 64 float32: 76,800 bytes, a length that needs a 3-byte varint.
    span.slots = Block(dtypes[i % 4], i == 5 ? 0 : 4 * (i + 1) * (i == 3 ? 75 : 1), 64,
                       static_cast<char>('a' + i));
    span.tokens = 10 * i + 1;
    span.segments = i + 1;
    span.cache_hit = i % 2 == 1;
    span.store_hit = i == 2;
    span.stored = i == 4 || i == 6;
    span.store_key = "icae:slots:" + std::to_string(i);
    result.spans.push_back(span);
  }
  for (bool handles : {false, true}) {
    v1::CompressResponse expected;
    ToProto(result, info, handles, &expected);
    grpc::ByteBuffer buffer;
    const int64_t referenced = WriteCompressResponse(result, info, handles, &buffer);
    std::vector<const void*> starts;
    const std::string bytes = Flatten(buffer, &starts);
    v1::CompressResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, expected))
        << "handles " << handles;
    int64_t inline_bytes = 0;
    for (const SpanResult& span : result.spans) {
      if (!(handles && span.stored)) inline_bytes += static_cast<int64_t>(span.slots.data->size());
    }
    EXPECT_EQ(referenced, inline_bytes);
    // The payload slices are the engine's buffers themselves.
    for (const SpanResult& span : result.spans) {
      if (handles && span.stored) continue;
      if (span.slots.data->empty()) continue;
      EXPECT_NE(std::find(starts.begin(), starts.end(),
                          static_cast<const void*>(span.slots.data->data())),
                starts.end())
          << span.id;
    }
  }
  // The buffer keeps the payload alive after the result is gone.
  grpc::ByteBuffer kept;
  {
    EncodeResult one;
    SpanResult span;
    span.slots = Block(DType::kFloat32, 4, 64, 'z');
    one.spans.push_back(span);
    WriteCompressResponse(one, info, false, &kept);
  }
  std::vector<const void*> starts;
  v1::CompressResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(kept, &starts)));
  EXPECT_EQ(parsed.spans(0).slots().slots().data(), std::string(4 * 64 * 4, 'z'));
}

}  // namespace
}  // namespace icae::encoder
