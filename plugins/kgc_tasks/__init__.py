"""Built-in IE tasks: NER, RE, SPO, EE, EET, EEA and KG in the IEPile instruction format."""

from kgcore import hookimpl

TASKS = {
    "NER": ("kgc_tasks.entities:NER", "named entity recognition"),
    "RE": ("kgc_tasks.relations:RE", "relation extraction (head, relation, tail)"),
    "SPO": ("kgc_tasks.relations:SPO", "typed subject-predicate-object triples"),
    "EE": ("kgc_tasks.events:EE", "event extraction: triggers and arguments"),
    "EET": ("kgc_tasks.events:EET", "event type and trigger extraction"),
    "EEA": ("kgc_tasks.events:EEA", "event argument extraction for given triggers"),
    "KG": ("kgc_tasks.kg:KG", "entity attribute (knowledge graph) extraction"),
}


@hookimpl
def kgc_register_tasks(register):
    for name, (target, summary) in TASKS.items():
        register(name, target, summary=summary)
