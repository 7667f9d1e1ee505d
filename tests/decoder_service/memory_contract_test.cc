// The memory contract of Generate (docs/operations.md, "Memory per request"): the peak RSS growth
// of the real icae-decoder for one request of P context positions is at most
//     4 x request bytes + KV(P) + 4 x heads x P^2 x 4 bytes + a small request's working set
// where KV(P) = P x layers x 2 x kv_heads x head_dim x 4 bytes and the quadratic term is the
// dense prefill attention of one layer at a time (float32 scores, the masked copy, the
// probabilities and one more buffer of that size: measured 3.5 of them). The largest
// legal request fills --max_context_tokens with slots; the test fails when a change makes the
// work grow with anything else (e.g. embedding ids before counting them once cost ~2 KB per id).
#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

int64_t PeakGrowth(const ServerProcess& process, const std::function<void()>& call) {
  absl::StatusOr<int64_t> before = testing::CurrentRssBytes(process.pid());
  EXPECT_OK(before);
  EXPECT_OK(testing::ResetPeakRss(process.pid()));
  call();
  absl::StatusOr<int64_t> peak = testing::PeakRssBytes(process.pid());
  EXPECT_OK(peak);
  return before.ok() && peak.ok() ? *peak - *before : -1;
}

TEST_F(DecoderServerTest, LargestLegalGenerateStaysWithinTheContract) {
  const ModelConfig config = RandomLlamaConfig(512, 6, 8, 1376, 512, 2048);  // SlowModel()
  std::unique_ptr<Server> server =
      StartDecoder(SlowModel().model_dir, SlowModel().adapter, {"--max_running", "1"},
                   scratch_->Join("memory.log"));
  ASSERT_NE(server, nullptr);
  const std::string& id = server->info.accepted_encoder_id();
  auto request_with = [&](int rows) {
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(at::randn({rows, config.hidden_size}).mul(0.02), id);
    request.set_template_name("raw");
    request.set_max_new_tokens(1);
    return request;
  };
  ASSERT_OK(server->client->Generate(request_with(4)).status());  // Warm-up.
  const v1::GenerateRequest small = request_with(64);
  const int64_t working_set =
      PeakGrowth(server->process, [&] { ASSERT_OK(server->client->Generate(small).status()); });

  // The context limit is the model's 2048 positions: the largest multiple of mem_size (4) that
  // leaves one position to generate.
  const int rows = 2044;
  const v1::GenerateRequest largest = request_with(rows);
  int prompt_positions = 0;
  const int64_t growth = PeakGrowth(server->process, [&] {
    auto response = server->client->Generate(largest);
    ASSERT_OK(response);
    prompt_positions = response->usage().slot_tokens() + response->usage().prompt_tokens();
  });
  ASSERT_GE(prompt_positions, rows);
  const int64_t p = prompt_positions;
  const int64_t request_bytes = static_cast<int64_t>(largest.ByteSizeLong());
  const int64_t head_dim = config.head_dim;
  const int64_t kv = (p + 1) * config.num_layers * 2 * config.num_kv_heads * head_dim * 4;
  const int64_t attention = 4 * int64_t{config.num_heads} * p * p * 4;
  const int64_t bound = 4 * request_bytes + kv + attention + working_set;
  std::cout << "Generate with " << p << " context positions: request " << request_bytes
            << " B, KV " << kv << " B, prefill attention term " << attention
            << " B, a small request's working set " << working_set << " B; peak RSS growth "
            << growth << " B, bound " << bound << " B (" << (100.0 * growth / bound) << "%)\n";
  EXPECT_GT(growth, 0);
  EXPECT_LE(growth, bound);
}

}  // namespace
}  // namespace icae::decoder
