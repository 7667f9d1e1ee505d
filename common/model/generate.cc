#include "common/model/generate.h"

#include <memory>

#include "common/base/status_macros.h"
#include "common/model/torch_status.h"

namespace icae {

at::Tensor DecodeLogits(const Transformer& transformer, absl::Span<Sequence* const> sequences,
                        const Transformer::StepChunk* chunk, at::Tensor* chunk_hidden) {
  std::vector<int64_t> tokens;
  std::vector<KVCache*> caches;
  tokens.reserve(sequences.size());
  caches.reserve(sequences.size());
  for (Sequence* seq : sequences) {
    tokens.push_back(seq->last_token());
    caches.push_back(&seq->cache());
  }
  at::Tensor embeds = transformer.Embed(at::tensor(tokens, at::TensorOptions().dtype(at::kLong)));
  at::Tensor hidden = chunk != nullptr
                          ? transformer.DecodeStep(embeds, caches, *chunk, chunk_hidden)
                          : transformer.DecodeStep(embeds, caches);
  return transformer.Logits(hidden)
      .to(at::kCPU, at::kFloat)
      .contiguous();  // [batch, vocab]
}

absl::StatusOr<std::vector<GenerationOutput>> GenerateBatch(
    const SlotDecoder& model, const std::vector<GenerationInput>& inputs,
    const GenerateOptions& options) {
  const Transformer& transformer = model.transformer();
  const ModelConfig& config = model.config();
  for (const GenerationInput& input : inputs) {
    RETURN_IF_ERROR(input.params.Validate(model.tokenizer() != nullptr));
  }
  return CatchTorch("generating", [&]() -> absl::StatusOr<std::vector<GenerationOutput>> {
    c10::InferenceMode guard;
    std::vector<GenerationOutput> outputs(inputs.size());
    std::vector<std::unique_ptr<Sequence>> sequences;
    auto record = [&](size_t i, const at::Tensor& logits) {
      if (options.keep_step_logits) {
        at::Tensor row = logits.to(at::kCPU, at::kFloat).contiguous();
        outputs[i].step_logits.emplace_back(row.data_ptr<float>(),
                                            row.data_ptr<float>() + row.numel());
      }
      Sequence& seq = *sequences[i];
      const int id = seq.Accept(logits);
      if (options.on_token && !(seq.finished() && seq.finish_reason() == FinishReason::kEos)) {
        if (!options.on_token(i, id, seq.TakeNewText())) seq.Cancel();
      }
    };
    for (size_t i = 0; i < inputs.size(); ++i) {
      const PromptInput& prompt = inputs[i].prompt;
      KVCache cache = transformer.NewCache(prompt.positions() + inputs[i].params.max_new_tokens);
      sequences.push_back(std::make_unique<Sequence>(std::move(cache), inputs[i].params,
                                                     model.tokenizer(), config.eos_token_id,
                                                     config.vocab_size));
      at::Tensor hidden = PrefillPrompt(transformer, prompt, 0, prompt.positions(),
                                        sequences[i]->cache());  // [positions, hidden]
      record(i, transformer.Logits(hidden[-1]));
    }
    while (true) {
      std::vector<size_t> active;
      for (size_t i = 0; i < sequences.size(); ++i) {
        if (!sequences[i]->finished()) active.push_back(i);
      }
      if (active.empty()) break;
      std::vector<Sequence*> batch;
      for (size_t i : active) batch.push_back(sequences[i].get());
      at::Tensor logits = DecodeLogits(transformer, batch);  // [batch, vocab]
      for (size_t row = 0; row < active.size(); ++row) record(active[row], logits[row]);
    }
    for (size_t i = 0; i < sequences.size(); ++i) {
      outputs[i].ids = sequences[i]->ids();
      outputs[i].text = sequences[i]->text();
      outputs[i].finish_reason = sequences[i]->finish_reason();
    }
    return outputs;
  });
}

}  // namespace icae
