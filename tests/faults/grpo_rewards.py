"""The GRPO kill test's reward (imported as `grpo_rewards:token_sum`, in the pytest process and
in the killed subprocess, whose script folder is this one): a function of the completion's tokens, so two runs
end with equal weights only if they generated the same completions."""


def token_sum(completions, completion_ids, **kwargs):
    return [float(sum(ids) % 5) for ids in completion_ids]
