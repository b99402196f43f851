"""Reads a CloudFormation YAML template with its short-form intrinsics, for the deployment tests.

`!Ref X` becomes {"Ref": X}, `!Sub s` {"Fn::Sub": s}, `!GetAtt A.B` {"Fn::GetAtt": [A, B]}, and
so on: the JSON form CloudFormation itself uses, so checks can compare structures.
"""
import yaml


class Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    name = suffix if suffix in ("Ref", "Condition") else "Fn::" + suffix
    return {name: value}


Loader.add_multi_constructor("!", _tag)


def load(path):
    """The template at `path` as plain dicts and lists."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)
