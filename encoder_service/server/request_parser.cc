#include "encoder_service/server/request_parser.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/io/utf8.h"

namespace icae::encoder {
namespace {

using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// Field numbers of encoder.proto: CompressRequest.spans = 1; Span.id = 1, Span.text = 2.
constexpr int kSpansField = 1;
constexpr int kSpanIdField = 1;
constexpr int kSpanTextField = 2;

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// Walks the message without UTF-8 checks to name the span field that holds invalid UTF-8.
absl::Status DiagnoseParseFailure(const std::string& bytes) {
  UnknownFieldSet request;
  if (!request.ParseFromString(bytes)) {
    return absl::InvalidArgumentError("request: not a valid icae.v1.CompressRequest");
  }
  int span_index = 0;
  for (int i = 0; i < request.field_count(); ++i) {
    const UnknownField& field = request.field(i);
    if (field.number() != kSpansField || field.type() != UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    UnknownFieldSet span;
    if (span.ParseFromString(field.length_delimited())) {
      for (int j = 0; j < span.field_count(); ++j) {
        const UnknownField& member = span.field(j);
        if (member.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
        const char* name = member.number() == kSpanTextField ? "text"
                           : member.number() == kSpanIdField ? "id"
                                                             : nullptr;
        if (name != nullptr && !IsValidUtf8(member.length_delimited())) {
          return absl::InvalidArgumentError(
              absl::StrCat("spans[", span_index, "].", name, ": not valid UTF-8"));
        }
      }
    }
    ++span_index;
  }
  return absl::InvalidArgumentError("request: not a valid icae.v1.CompressRequest");
}

}  // namespace

absl::Status ParseCompressRequest(const grpc::ByteBuffer& buffer, v1::CompressRequest* out) {
  grpc::ByteBuffer copy(buffer);  // shares the slices; Deserialize consumes its argument
  grpc::Status status = grpc::SerializationTraits<v1::CompressRequest>::Deserialize(&copy, out);
  if (status.ok()) return absl::OkStatus();
  return DiagnoseParseFailure(Flatten(buffer));
}

}  // namespace icae::encoder
