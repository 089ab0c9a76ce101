"""A griffe extension for the API reference: the docstrings' doctest examples (``>>>`` lines and
their expected output, up to a blank line) are shown as Python console blocks, where Markdown
would otherwise run them into a paragraph."""

import griffe


def fence_examples(text):
    lines, fenced, in_example = text.splitlines(), [], False
    for line in lines:
        starts = line.lstrip().startswith(">>>")
        if starts and not in_example:
            fenced.append("```pycon")
            in_example = True
        elif in_example and not line.strip():
            fenced.append("```")
            in_example = False
        fenced.append(line)
    if in_example:
        fenced.append("```")
    return "\n".join(fenced)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_examples(obj.docstring.value)
