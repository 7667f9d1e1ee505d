#include "encoder_service/server/redis_slot_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/codec/proto_dtype.h"
#include "encoder_service/server/proto_convert.h"
#include "icae/v1/slots.pb.h"

namespace icae::encoder {
namespace {

// Entries per pipelined SET of the background writer.
constexpr size_t kWriteBatch = 32;

// The span in `value` if it is what this encoder would have written for `wire`, else the reason.
absl::StatusOr<StoredSpan> ParseStored(std::string value, const EngineModelInfo& info, DType wire) {
  v1::MemorySlots slots;
  if (!slots.ParseFromString(value)) return absl::DataLossError("not a MemorySlots message");
  v1::Tensor* tensor = slots.mutable_slots();
  if (slots.kind() != ToProtoSlotKind(info.slots.kind) || slots.encoder_id() != info.encoder_id ||
      slots.mem_size() != info.mem_size || slots.num_segments() < 0) {
    return absl::DataLossError("made by another encoder or slot kind");
  }
  const int64_t rows = static_cast<int64_t>(slots.num_segments()) * info.mem_size;
  const std::vector<int64_t> shape = info.slots.Shape(rows);
  if (tensor->dtype() != ToProtoDataType(wire) ||
      !std::equal(shape.begin(), shape.end(), tensor->shape().begin(), tensor->shape().end())) {
    return absl::DataLossError("dtype or shape does not match");
  }
  if (tensor->data().size() !=
      static_cast<uint64_t>(rows * info.slots.elements_per_slot()) * ItemSize(wire)) {
    return absl::DataLossError("data length does not match its shape");
  }
  StoredSpan out;
  if (wire == DType::kInt8) {
    const v1::Tensor& scale = tensor->scale();
    if (scale.dtype() != v1::FLOAT32 ||
        scale.data().size() != static_cast<uint64_t>(rows * info.slots.blocks()) * 4) {
      return absl::DataLossError("int8 scales do not match");
    }
    out.slots.scales = std::make_shared<const std::string>(std::move(*tensor->mutable_scale()->mutable_data()));
  }
  out.slots.dtype = wire;
  out.slots.num_slots = rows;
  out.slots.data = std::make_shared<const std::string>(std::move(*tensor->mutable_data()));
  out.tokens = slots.source_tokens();
  out.segments = slots.num_segments();
  return out;
}

}  // namespace

RedisSlotStore::RedisSlotStore(SlotStoreOptions options, EngineModelInfo info,
                               StoreMetrics* metrics)
    : options_(std::move(options)),
      info_(std::move(info)),
      metrics_(metrics),
      redis_(options_.redis) {
  writer_ = std::thread([this] { WriterLoop(); });
}

RedisSlotStore::~RedisSlotStore() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  writer_.join();
}

std::vector<std::optional<StoredSpan>> RedisSlotStore::Fetch(absl::Span<const std::string> keys,
                                                             DType wire) {
  std::vector<std::optional<StoredSpan>> out(keys.size());
  if (keys.empty()) return out;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<std::optional<std::string>>> values = redis_.Get(keys, options_.ttl);
  if (metrics_ != nullptr) metrics_->ObserveRoundTrip(false, absl::ToDoubleSeconds(absl::Now() - start));
  if (!values.ok()) {
    if (metrics_ != nullptr) metrics_->AddLookups(0, 0, static_cast<int64_t>(keys.size()));
    ICAE_LOG_EVERY_N_SEC(WARNING, 10) << "slot store lookup failed (served from the model): "
                                      << values.status();
    return out;
  }
  int64_t hits = 0, misses = 0, errors = 0, bytes = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::optional<std::string>& value = (*values)[i];
    if (!value) {
      ++misses;
      continue;
    }
    bytes += static_cast<int64_t>(value->size());
    absl::StatusOr<StoredSpan> span = ParseStored(*std::move(value), info_, wire);
    if (!span.ok()) {
      ++errors;
      ICAE_LOG_EVERY_N_SEC(WARNING, 10) << "slot store entry " << keys[i]
                                        << " is not usable: " << span.status();
      continue;
    }
    ++hits;
    out[i] = *std::move(span);
  }
  if (metrics_ != nullptr) {
    metrics_->AddLookups(hits, misses, errors);
    metrics_->AddBytes(bytes, 0);
  }
  return out;
}

std::vector<bool> RedisSlotStore::Write(
    absl::Span<const std::pair<std::string, StoredSpan>> entries) {
  std::vector<bool> written(entries.size(), false);
  std::vector<std::pair<std::string, std::string>> values;
  std::vector<size_t> index;
  int64_t dropped = 0, bytes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const StoredSpan& span = entries[i].second;
    if (span.slots.bytes() + 512 > options_.max_value_bytes) {
      ++dropped;
      continue;
    }
    v1::MemorySlots slots;
    FillMemorySlots(span.slots, info_, span.tokens, span.segments, &slots);
    values.emplace_back(entries[i].first, slots.SerializeAsString());
    bytes += static_cast<int64_t>(values.back().second.size());
    index.push_back(i);
  }
  absl::Status status = absl::OkStatus();
  if (!values.empty()) {
    const absl::Time start = absl::Now();
    status = redis_.Set(values, options_.ttl);
    if (metrics_ != nullptr) metrics_->ObserveRoundTrip(true, absl::ToDoubleSeconds(absl::Now() - start));
    if (status.ok()) {
      for (size_t i : index) written[i] = true;
    } else {
      ICAE_LOG_EVERY_N_SEC(WARNING, 10) << "slot store write failed: " << status;
    }
  }
  if (metrics_ != nullptr) {
    const int64_t n = static_cast<int64_t>(values.size());
    metrics_->AddWrites(status.ok() ? n : 0, status.ok() ? 0 : n, dropped);
    if (status.ok()) metrics_->AddBytes(0, bytes);
  }
  return written;
}

void RedisSlotStore::WriteLater(std::vector<std::pair<std::string, StoredSpan>> entries) {
  int64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    for (auto& entry : entries) {
      const int64_t bytes = entry.second.slots.bytes();
      if (queued_bytes_ + bytes > options_.queue_bytes) {
        ++dropped;
        continue;
      }
      queued_bytes_ += bytes;
      queue_.push_back(std::move(entry));
    }
    if (metrics_ != nullptr) metrics_->SetQueueBytes(queued_bytes_);
  }
  if (dropped > 0 && metrics_ != nullptr) metrics_->AddWrites(0, 0, dropped);
}

void RedisSlotStore::WriterLoop() {
  for (;;) {
    std::vector<std::pair<std::string, StoredSpan>> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](RedisSlotStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return s->stop_ || !s->queue_.empty();
          },
          this));
      if (stop_) return;
      while (!queue_.empty() && batch.size() < kWriteBatch) {
        queued_bytes_ -= queue_.front().second.slots.bytes();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      writing_ = true;
      if (metrics_ != nullptr) metrics_->SetQueueBytes(queued_bytes_);
    }
    Write(batch);
    absl::MutexLock lock(&mu_);
    writing_ = false;
  }
}

void RedisSlotStore::Flush() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](RedisSlotStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
        return s->stop_ || (s->queue_.empty() && !s->writing_);
      },
      this));
}

}  // namespace icae::encoder
