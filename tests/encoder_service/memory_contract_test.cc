// The memory contract of Compress (docs/operations.md, "Memory per request"): the peak RSS growth
// of the real icae-encoder for one request is at most
//     6 x request bytes + 4 x response slot bytes (float32) + one batch's working set
// where the working set (activations of a full batch, allocator slack) is measured on the same
// server with a request that fills exactly one batch. The largest legal request here is
// --max_spans spans of --max_input_tokens ids each; the bound is what it may cost, and the test
// fails when a change makes the work grow with something else (as tokenizing before checking a
// length once did: ~250 bytes of RSS per input byte).
#include <random>

#include "tests/encoder_service/encoder_server_fixture.h"

namespace icae::testing {
namespace {

class EncoderMemoryTest : public EncoderServerTest {
 protected:
  // The peak RSS growth of the server while `call` runs.
  int64_t PeakGrowth(const std::function<void()>& call) {
    absl::StatusOr<int64_t> before = CurrentRssBytes(server_->pid());
    EXPECT_OK(before);
    EXPECT_OK(ResetPeakRss(server_->pid()));
    call();
    absl::StatusOr<int64_t> peak = PeakRssBytes(server_->pid());
    EXPECT_OK(peak);
    return before.ok() && peak.ok() ? *peak - *before : -1;
  }
  static v1::CompressRequest RandomIdsRequest(int spans, int tokens, int vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> id(3, vocab - 1);
    std::vector<std::vector<int>> ids(spans, std::vector<int>(tokens));
    for (auto& span : ids)
      for (int& t : span) t = id(rng);
    return IdsRequest(ids);
  }
};

TEST_F(EncoderMemoryTest, LargestLegalCompressStaysWithinTheContract) {
  constexpr int kSpans = 64, kTokens = 5120;  // --max_spans, --max_input_tokens (the defaults)
  // The cache off (it is a separate, bounded cost: --cache_bytes), and a queue deep enough for
  // the whole request (64 x 5120 tokens are 20,480 segments of the tiny model).
  StartServer({"--cache_bytes", "0", "--max_queue_segments", "30000", "--max_spans",
               std::to_string(kSpans), "--max_input_tokens", std::to_string(kTokens)});
  EncoderClient client = Client();
  auto info = client.GetInfo();
  ASSERT_OK(info);
  const int vocab = info->vocab_size(), hidden = info->hidden_size();
  const int segment_tokens = info->mem_size() * info->compression_rate();

  // Warm-up (allocator pools, thread stacks, lazily loaded code), then one full batch:
  // --max_batch_segments (16) segments in one span.
  ASSERT_OK(client.Compress(RandomIdsRequest(1, segment_tokens, vocab, 1)).status());
  const v1::CompressRequest one_batch = RandomIdsRequest(1, 16 * segment_tokens, vocab, 2);
  const int64_t batch_set = PeakGrowth([&] { ASSERT_OK(client.Compress(one_batch).status()); });

  const v1::CompressRequest largest = RandomIdsRequest(kSpans, kTokens, vocab, 3);
  int64_t slots = 0;
  const int64_t growth = PeakGrowth([&] {
    auto response = client.Compress(largest);
    ASSERT_OK(response);
    for (const auto& span : response->spans()) slots += span.usage().slots();
  });
  const int64_t request_bytes = static_cast<int64_t>(largest.ByteSizeLong());
  const int64_t slot_bytes = slots * hidden * 4;
  const int64_t bound = 6 * request_bytes + 4 * slot_bytes + batch_set;
  std::cout << "Compress " << kSpans << " x " << kTokens << " ids: request " << request_bytes
            << " B, response slots " << slot_bytes << " B (float32), one batch's working set "
            << batch_set << " B; peak RSS growth " << growth << " B, bound " << bound << " B ("
            << (100.0 * growth / bound) << "%)\n";
  EXPECT_EQ(slots, static_cast<int64_t>(kSpans) * kTokens / segment_tokens * info->mem_size());
  EXPECT_GT(growth, 0);
  EXPECT_LE(growth, bound);
}

}  // namespace
}  // namespace icae::testing
