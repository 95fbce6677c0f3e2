"""process_docs for the *_local tasks: map the official AI2 ARC jsonl to the fields of the
Hugging Face `allenai/ai2_arc` dataset that lm-eval's own arc_easy / arc_challenge tasks read."""


def _arc_doc(doc):
    q = doc["question"]
    return {
        "id": doc["id"],
        "question": q["stem"],
        "choices": {
            "text": [c["text"] for c in q["choices"]],
            "label": [c["label"] for c in q["choices"]],
        },
        "answerKey": doc["answerKey"],
    }


def process_arc(dataset):
    # Row order is the file's order, so lm-eval's doc_id = line index in the jsonl.
    return dataset.map(_arc_doc, remove_columns=dataset.column_names)
