// icae-train finetune: the ICAE fine-tuning stage (instruction samples read from slots).
#include "tools/train/icae_tasks.h"

#include <cmath>
#include <optional>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/io/tokenizer.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "tools/train/finetune_data.h"
#include "tools/train/icae_layout.h"
#include "tools/train/icae_setup.h"
#include "tools/train/lm_task.h"
#include "tools/train/token_corpus.h"

namespace icae::train {
namespace {

class FinetuneTask : public TrainTask {
 public:
  FinetuneTask(FinetuneOptions options, TrainOptions train, IcaeSetup setup, PromptTemplate tmpl,
               std::vector<TokenizedExample> train_set, std::vector<TokenizedExample> valid_set,
               TemplateTokens tokens)
      : options_(std::move(options)),
        train_(std::move(train)),
        s_(std::move(setup)),
        tmpl_(tmpl),
        train_set_(std::move(train_set)),
        valid_set_(std::move(valid_set)),
        tokens_(std::move(tokens)) {
    for (size_t i = 0; i < train_set_.size(); ++i) order_stream_.push_back(static_cast<int>(i));
    sampler_ =
        std::make_unique<WindowSampler>(&order_stream_, 1, static_cast<uint64_t>(train_.seed));
  }

  std::vector<at::Tensor> Parameters() const override { return s_.icae.Parameters(); }

  absl::StatusOr<MicroBatchLoss> NextLoss() override {
    std::vector<const TokenizedExample*> batch;
    for (int b = 0; b < train_.batch; ++b) batch.push_back(&train_set_[sampler_->Next()[0]]);
    ASSIGN_OR_RETURN(BatchLoss loss, Loss(batch));
    return MicroBatchLoss{loss.mean_loss, positions_};
  }

  absl::StatusOr<Metrics> Validate() override {
    double total = 0;
    int64_t n = 0, correct = 0;
    const size_t count = std::min<size_t>(valid_set_.size(), options_.valid_samples);
    for (size_t i = 0; i < count; i += train_.batch) {
      std::vector<const TokenizedExample*> batch;
      for (size_t j = i; j < std::min(count, i + train_.batch); ++j)
        batch.push_back(&valid_set_[j]);
      ASSIGN_OR_RETURN(BatchLoss loss, Loss(batch));
      total += loss.mean_loss.item<double>() * loss.labelled;
      n += loss.labelled;
      correct += loss.correct;
    }
    const double mean = total / std::max<int64_t>(1, n);
    return Metrics{{"loss", mean},
                   {"answer_ppl", std::exp(mean)},
                   {"answer_token_acc", static_cast<double>(correct) / std::max<int64_t>(1, n)}};
  }

  nlohmann::json DataState() const override {
    return {{"epoch", sampler_->cursor().epoch}, {"index", sampler_->cursor().index}};
  }
  absl::Status RestoreDataState(const nlohmann::json& s) override {
    if (!s.is_object() || !s.contains("epoch") || !s.contains("index")) {
      return absl::DataLossError("checkpoint data state lacks epoch/index");
    }
    sampler_->set_cursor({s["epoch"].get<int64_t>(), s["index"].get<int64_t>()});
    return absl::OkStatus();
  }
  absl::Status Export(const std::string& dir) const override {
    return SaveIcaeAdapter(dir, s_.base->config(), s_.icae, options_.model);
  }
  std::string Recipe() const override {
    return absl::StrCat("finetune ", IcaeRecipe(s_, options_.model),
                        " template=", PromptTemplateName(tmpl_), " examples=", train_set_.size());
  }
  double FlopsPerMicroBatch() const override {
    // Estimated from the mean example size.
    double enc = 0, dec = 0;
    for (const TokenizedExample& e : train_set_) {
      const int segments = PlanSegments(static_cast<int>(e.context.size()), s_.icae.config.mem_size,
                                        s_.icae.config.compression_rate)
                               .num_segments;
      enc += e.context.size() + segments * s_.icae.config.mem_size;
      dec += segments * s_.icae.config.mem_size + e.prompt.size() + e.answer.size() + 8;
    }
    const double n = std::max<size_t>(1, train_set_.size());
    return IcaeFlops(s_.base->config(), train_.batch, static_cast<int64_t>(enc / n),
                     static_cast<int64_t>(dec / n));
  }

 private:
  absl::StatusOr<BatchLoss> Loss(const std::vector<const TokenizedExample*>& batch) {
    std::vector<std::vector<int>> contexts;
    for (const TokenizedExample* e : batch) contexts.push_back(e->context);
    std::vector<at::Tensor> slots = EncodeContexts(*s_.base, s_.icae, contexts);
    std::vector<DecoderExample> examples;
    int64_t enc = 0;
    const ModelConfig& c = s_.base->config();
    for (size_t i = 0; i < batch.size(); ++i) {
      const int n = SlotCount(slots[i]);
      enc += batch[i]->context.size() + n;
      ASSIGN_OR_RETURN(
          DecoderExample e,
          FinetuneExample(tmpl_, n, batch[i]->prompt, batch[i]->answer, tokens_, c.eos_token_id));
      examples.push_back(std::move(e));
    }
    BatchLoss loss = ExamplesLoss(*s_.base, SpecialRows(s_.icae), examples, slots);
    positions_ = enc + loss.positions;
    return loss;
  }

  FinetuneOptions options_;
  TrainOptions train_;
  IcaeSetup s_;
  PromptTemplate tmpl_;
  std::vector<TokenizedExample> train_set_;
  std::vector<TokenizedExample> valid_set_;
  TemplateTokens tokens_;          // BOS and [INST] / [/INST], as the decoder service spells them.
  std::vector<int> order_stream_;  // 0..n-1, served in a seeded order per epoch.
  std::unique_ptr<WindowSampler> sampler_;
  int64_t positions_ = 0;
};

}  // namespace

void RegisterFinetuneFlags(FlagSet& flags, FinetuneOptions* o) {
  RegisterIcaeFlags(flags, o);
  flags.String("template", &o->prompt_template, "icae-v2-instruct or icae-v1");
  flags.Int("max-context-tokens", &o->max_context_tokens, "contexts are cut to this many tokens");
}

absl::StatusOr<std::unique_ptr<TrainTask>> CreateFinetuneTask(const FinetuneOptions& options,
                                                              const TrainOptions& train) {
  RETURN_IF_ERROR(ValidateTrainOptions(train));
  RETURN_IF_ERROR(ValidateIcaeOptions(options));
  ASSIGN_OR_RETURN(PromptTemplate tmpl, ParsePromptTemplate(options.prompt_template));
  if (tmpl != PromptTemplate::kIcaeV2Instruct && tmpl != PromptTemplate::kIcaeV1) {
    return absl::InvalidArgumentError("--template must be icae-v2-instruct or icae-v1");
  }
  if (options.max_context_tokens <= 0) {
    return absl::InvalidArgumentError("--max-context-tokens must be positive");
  }
  ASSIGN_OR_RETURN(IcaeSetup setup, LoadIcaeSetup(options, train));
  ASSIGN_OR_RETURN(
      std::vector<TokenizedExample> train_set,
      ReadFinetuneExamples(options.train, *setup.tokenizer, options.max_context_tokens));
  ASSIGN_OR_RETURN(
      std::vector<TokenizedExample> valid_set,
      ReadFinetuneExamples(options.valid, *setup.tokenizer, options.max_context_tokens));
  ASSIGN_OR_RETURN(TemplateTokens tokens,
                   TemplateTokensFor(setup.base->config(), setup.tokenizer.get()));
  if (train_set.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--train '", options.train, "' needs at least 2 examples"));
  }
  return std::unique_ptr<TrainTask>(new FinetuneTask(options, train, std::move(setup), tmpl,
                                                     std::move(train_set), std::move(valid_set),
                                                     std::move(tokens)));
}

}  // namespace icae::train
