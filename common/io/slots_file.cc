#include "common/io/slots_file.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/safetensors.h"
#include "common/io/safetensors_writer.h"

namespace icae {

absl::Status WriteSlotsFile(const std::string& path, const SlotsFile& slots) {
  SafetensorsWriter writer;
  writer.SetMetadata("kind", std::string(SlotKindName(slots.kind)));
  writer.SetMetadata("encoder_id", slots.encoder_id);
  writer.SetMetadata("source_tokens", absl::StrCat(slots.source_tokens));
  writer.SetMetadata("num_segments", absl::StrCat(slots.num_segments));
  writer.SetMetadata("mem_size", absl::StrCat(slots.mem_size));
  RETURN_IF_ERROR(writer.Add("slots", slots.dtype, slots.shape, slots.data));
  return writer.WriteFile(path);
}

absl::StatusOr<SlotsFile> ReadSlotsFile(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  const TensorInfo* info = file->Find("slots");
  if (info == nullptr) return absl::InvalidArgumentError(absl::StrCat(path, ": no 'slots' tensor"));
  const auto& meta = file->metadata();
  SlotsFile slots;
  if (auto it = meta.find("kind"); it != meta.end()) {
    absl::StatusOr<SlotKind> kind = ParseSlotKind(it->second);
    if (!kind.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad metadata kind=", it->second));
    }
    slots.kind = *kind;
  }
  const size_t rank = slots.kind == SlotKind::kKv ? 5 : 2;
  if (info->shape.size() != rank || !IsFloating(info->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": 'slots' must be a float tensor ",
        slots.kind == SlotKind::kKv ? "[layers, 2, kv_heads, num_slots, head_dim]"
                                    : "[num_slots, hidden]"));
  }
  slots.dtype = info->dtype;
  slots.shape = info->shape;
  absl::Span<const uint8_t> bytes = file->Bytes(*info);
  slots.data.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  auto get_int = [&](const char* key, int* out) -> absl::Status {
    auto it = meta.find(key);
    if (it == meta.end()) return absl::OkStatus();
    if (!absl::SimpleAtoi(it->second, out) || *out < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": bad metadata ", key, "=", it->second));
    }
    return absl::OkStatus();
  };
  if (auto it = meta.find("encoder_id"); it != meta.end()) slots.encoder_id = it->second;
  RETURN_IF_ERROR(get_int("source_tokens", &slots.source_tokens));
  RETURN_IF_ERROR(get_int("num_segments", &slots.num_segments));
  RETURN_IF_ERROR(get_int("mem_size", &slots.mem_size));
  return slots;
}

}  // namespace icae
