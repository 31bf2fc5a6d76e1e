"""In-context learning (zero- and few-shot) through any backend: the ``kgc icl`` command.

The prompts reproduce the reference's ``PromptCraft`` (DeepKE ``deepke-llm`` branch,
``example/llm/src/utils/prompt.py``) for ner, re, ee, rte and da in English and Chinese; their
texts are in ``prompts.yaml``. Deliberate differences are listed in ``docs/icl.md``. ::

    from kgc_icl import IclSpec, build_prompt, run_icl
    print(build_prompt("ner", "Obama visited Berlin.", "en", labels="PER,LOC"))
"""

from kgcore import hookimpl

from .parse import (IclAnswer, parse_da, parse_ee, parse_icl_answer, parse_literal, parse_ner, parse_re,
                    parse_rte)
from .prompts import (EXAMPLE_SUFFIXES, LANGUAGES, TASKS, build_prompt, default_instruction, example_file,
                      examples_block, load_examples, normalize_example, normalize_language, normalize_task,
                      prompt_texts, split_labels, task_prompt)
from .run import IclResult, IclSpec, icl_prompts, run_icl

__all__ = ["EXAMPLE_SUFFIXES", "LANGUAGES", "TASKS", "IclAnswer", "IclResult", "IclSpec", "build_prompt",
           "default_instruction", "example_file", "examples_block", "icl_prompts", "load_examples",
           "normalize_example", "normalize_language", "normalize_task", "parse_da", "parse_ee", "parse_icl_answer",
           "parse_literal", "parse_ner", "parse_re", "parse_rte", "prompt_texts", "run_icl", "split_labels",
           "task_prompt"]


@hookimpl
def kgc_register_commands(cli):
    from .command import icl

    cli.add_command(icl)
