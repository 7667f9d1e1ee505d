#include "common/client/encoder_router.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"

namespace icae {
namespace {

uint64_t Score(const std::string& content_key, const std::string& address) {
  const std::string hex = Sha256Hex(absl::StrCat(content_key, "\n", address));
  uint64_t score = 0;
  absl::SimpleHexAtoi(hex.substr(0, 16), &score);
  return score;
}

struct Group {
  size_t replica = 0;
  std::vector<int> spans;  // request span indexes
  absl::StatusOr<v1::CompressResponse> response;
};

}  // namespace

absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(absl::string_view name) {
  if (name == "round_robin") return RoutingPolicy::kRoundRobin;
  if (name == "hash") return RoutingPolicy::kContentHash;
  return absl::InvalidArgumentError(
      absl::StrCat("routing '", name, "': expected hash or round_robin"));
}

std::string SpanContentKey(const v1::Span& span) {
  if (span.content_case() == v1::Span::kTokenIds) {
    std::string bytes = "ids\n";
    for (int32_t id : span.token_ids().ids()) {
      char le[4];
      const uint32_t u = static_cast<uint32_t>(id);
      for (int b = 0; b < 4; ++b) le[b] = static_cast<char>((u >> (8 * b)) & 0xff);
      bytes.append(le, 4);
    }
    return Sha256Hex(bytes);
  }
  return Sha256Hex(absl::StrCat("text\n", span.text()));
}

std::vector<size_t> RendezvousRanking(const std::string& content_key,
                                      const std::vector<std::string>& addresses) {
  std::vector<std::pair<uint64_t, size_t>> scored;
  scored.reserve(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) {
    scored.emplace_back(Score(content_key, addresses[i]), i);
  }
  std::sort(scored.begin(), scored.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<size_t> out;
  for (const auto& [score, i] : scored) out.push_back(i);
  return out;
}

absl::StatusOr<EncoderRouter> EncoderRouter::Create(const ClientOptions& options,
                                                    RoutingPolicy policy) {
  EncoderRouter router;
  const bool single_target =
      options.addresses.size() == 1 || (!options.addresses.empty() &&
                                        options.addresses[0].find(":///") != std::string::npos);
  if (policy == RoutingPolicy::kRoundRobin || single_target) {
    ASSIGN_OR_RETURN(EncoderClient client, EncoderClient::Create(options));
    router.replicas_.push_back(std::move(client));
    router.addresses_ = {absl::StrJoin(options.addresses, ",")};
    return router;
  }
  for (const std::string& address : options.addresses) {
    ClientOptions one = options;
    one.addresses = {address};
    one.max_attempts = 1;  // the fallback is ours: the next replica of each span
    ASSIGN_OR_RETURN(EncoderClient client, EncoderClient::Create(one));
    router.replicas_.push_back(std::move(client));
    router.addresses_.push_back(address);
  }
  return router;
}

absl::StatusOr<v1::CompressResponse> EncoderRouter::Compress(const v1::CompressRequest& request,
                                                             absl::Duration timeout) const {
  if (replicas_.size() == 1) return replicas_[0].Compress(request, timeout);
  const int n = request.spans_size();
  std::vector<std::vector<size_t>> ranking(n);
  std::vector<size_t> attempt(n, 0);
  for (int i = 0; i < n; ++i) ranking[i] = RendezvousRanking(SpanContentKey(request.spans(i)), addresses_);
  std::vector<int> pending(n);
  for (int i = 0; i < n; ++i) pending[i] = i;
  std::vector<const v1::CompressedSpan*> placed(n, nullptr);
  std::deque<absl::StatusOr<v1::CompressResponse>> kept;  // owns the placed spans (stable)
  v1::CompressResponse merged;
  while (!pending.empty()) {
    std::vector<Group> groups;
    for (int i : pending) {
      const size_t replica = ranking[i][attempt[i]];
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const Group& g) { return g.replica == replica; });
      if (it == groups.end()) {
        groups.push_back(Group{replica, {}, absl::UnknownError("not sent")});
        it = groups.end() - 1;
      }
      it->spans.push_back(i);
    }
    std::vector<std::thread> threads;
    for (Group& group : groups) {
      threads.emplace_back([&, g = &group] {
        v1::CompressRequest sub;
        sub.set_slot_dtype(request.slot_dtype());
        sub.set_bypass_cache(request.bypass_cache());
        sub.set_return_handles(request.return_handles());
        for (int i : g->spans) *sub.add_spans() = request.spans(i);
        g->response = replicas_[g->replica].Compress(sub, timeout);
      });
    }
    for (std::thread& t : threads) t.join();
    pending.clear();
    for (Group& group : groups) {
      if (!group.response.ok()) {
        const absl::Status& s = group.response.status();
        const bool retry = s.code() == absl::StatusCode::kUnavailable;
        for (int i : group.spans) {
          if (!retry || ++attempt[i] >= ranking[i].size()) {
            return absl::Status(s.code(), absl::StrCat("encoder ", addresses_[group.replica],
                                                       " (request spans ",
                                                       absl::StrJoin(group.spans, ","), "): ",
                                                       s.message()));
          }
          pending.push_back(i);
        }
        continue;
      }
      if (group.response->spans_size() != static_cast<int>(group.spans.size())) {
        return absl::DataLossError(absl::StrCat("encoder ", addresses_[group.replica],
                                                " returned ", group.response->spans_size(),
                                                " spans for ", group.spans.size()));
      }
      kept.push_back(std::move(group.response));
      const v1::CompressResponse& response = *kept.back();
      for (size_t k = 0; k < group.spans.size(); ++k) placed[group.spans[k]] = &response.spans(k);
      v1::CompressUsage* usage = merged.mutable_usage();
      const v1::CompressUsage& u = response.usage();
      usage->set_spans(usage->spans() + u.spans());
      usage->set_tokens(usage->tokens() + u.tokens());
      usage->set_segments(usage->segments() + u.segments());
      usage->set_slots(usage->slots() + u.slots());
      usage->set_cache_hits(usage->cache_hits() + u.cache_hits());
      usage->set_store_hits(usage->store_hits() + u.store_hits());
      // Replicas ran concurrently: the request waited as long as the slowest.
      usage->set_queue_seconds(std::max(usage->queue_seconds(), u.queue_seconds()));
      usage->set_compute_seconds(std::max(usage->compute_seconds(), u.compute_seconds()));
    }
    std::sort(pending.begin(), pending.end());
  }
  for (int i = 0; i < n; ++i) *merged.add_spans() = *placed[i];
  return merged;
}

}  // namespace icae
