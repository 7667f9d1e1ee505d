// Fine-tuning data: JSONL, one object per line with string fields "context", "prompt" and
// "answer" (empty lines are skipped). Tokenized without BOS, as ICAE v2 does; contexts are cut to
// `max_context_tokens`.
#ifndef ICAE_TOOLS_TRAIN_FINETUNE_DATA_H_
#define ICAE_TOOLS_TRAIN_FINETUNE_DATA_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/io/tokenizer.h"

namespace icae::train {

struct TokenizedExample {
  std::vector<int> context;
  std::vector<int> prompt;
  std::vector<int> answer;
};

// InvalidArgument naming file:line for bad JSON, a missing or non-string field, an empty
// context or answer; for a file without examples. NotFound / PermissionDenied when unreadable.
absl::StatusOr<std::vector<TokenizedExample>> ReadFinetuneExamples(const std::string& path,
                                                                   const Tokenizer& tokenizer,
                                                                   int max_context_tokens);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_FINETUNE_DATA_H_
