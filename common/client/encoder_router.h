// Slot-aware routing over encoder replicas. With content-hash routing each span goes to the
// replica ranked first for it by rendezvous (highest-random-weight) hashing of its content key
// and the replica's address, so every repeat of a document lands on the replica whose cache
// holds its slots, and adding or removing a replica moves only that replica's share. A request's
// spans are split by replica, sent concurrently and merged back in order; spans whose replica
// answers UNAVAILABLE (down, draining) go to their next-ranked replica. Round-robin (the plain
// EncoderClient over all addresses, gRPC's balancing) stays available.
//
//   ASSIGN_OR_RETURN(auto router, EncoderRouter::Create(options, RoutingPolicy::kContentHash));
//   ASSIGN_OR_RETURN(v1::CompressResponse response, router.Compress(request));
//
// Thread-safe; cheap to copy.
#ifndef ICAE_COMMON_CLIENT_ENCODER_ROUTER_H_
#define ICAE_COMMON_CLIENT_ENCODER_ROUTER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/client/client_options.h"
#include "common/client/encoder_client.h"
#include "icae/v1/encoder.pb.h"

namespace icae {

enum class RoutingPolicy { kRoundRobin, kContentHash };

// "round_robin" or "hash"; InvalidArgument otherwise.
absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(absl::string_view name);

// The content key of a span: 64 hex digits of sha256 over its text or its token ids (the same
// key in every client: the Python client computes it identically).
std::string SpanContentKey(const v1::Span& span);

// Replica indexes for `content_key`, best first: descending sha256(content_key + "\n" + address)
// read as a big-endian 64-bit integer.
std::vector<size_t> RendezvousRanking(const std::string& content_key,
                                      const std::vector<std::string>& addresses);

class EncoderRouter {
 public:
  // Content-hash routing needs two or more literal addresses (one, or a dns:/// target, is a
  // single client); each replica gets its own connection with options' TLS and token.
  static absl::StatusOr<EncoderRouter> Create(const ClientOptions& options, RoutingPolicy policy);

  // Errors: the first replica error that is not UNAVAILABLE, or UNAVAILABLE when a span ran out
  // of replicas; the message says which request spans that replica was sent.
  absl::StatusOr<v1::CompressResponse> Compress(
      const v1::CompressRequest& request, absl::Duration timeout = absl::ZeroDuration()) const;

  size_t replicas() const { return replicas_.size(); }
  const std::vector<std::string>& addresses() const { return addresses_; }

 private:
  EncoderRouter() = default;
  std::vector<EncoderClient> replicas_;  // one per address; a single one for round-robin
  std::vector<std::string> addresses_;
};

}  // namespace icae

#endif  // ICAE_COMMON_CLIENT_ENCODER_ROUTER_H_
