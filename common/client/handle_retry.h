// Generation over slot handles with recompression: a handle's store entry may expire (or be
// evicted) between Compress and Generate, and the decoder then answers NOT_FOUND naming the key.
// GenerateWithHandles compresses the documents of the request's handle parts again and retries,
// so a caller holding handles never sees that race.
//
//   std::vector<std::optional<v1::Span>> sources = ...;  // sources[i]: span behind context(i)
//   ASSIGN_OR_RETURN(auto response, GenerateWithHandles(router, decoder, request, sources));
#ifndef ICAE_COMMON_CLIENT_HANDLE_RETRY_H_
#define ICAE_COMMON_CLIENT_HANDLE_RETRY_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/client/decoder_client.h"
#include "common/client/encoder_router.h"
#include "icae/v1/decoder.pb.h"

namespace icae {

// Sends `request`; on NOT_FOUND, every handle part i with sources[i] set is compressed again
// (return_handles; inline slots where the store refused them), replaced, and the request retried,
// at most `max_retries` times. Other errors, and NOT_FOUND with no source to recompress, come
// back as they are.
absl::StatusOr<v1::GenerateResponse> GenerateWithHandles(
    const EncoderRouter& encoder, const DecoderClient& decoder, v1::GenerateRequest request,
    const std::vector<std::optional<v1::Span>>& sources, int max_retries = 1);

}  // namespace icae

#endif  // ICAE_COMMON_CLIENT_HANDLE_RETRY_H_
