"""A searched schedule handed to a framework's own training loop: Lightning (`lightning`) and Hugging Face's
Trainer (`huggingface`). Each imports its framework, an optional extra (`pip install "lrsearch[lightning]"`,
`"lrsearch[hf]"`), so the rest of lrsearch never does; nothing below the entry imports this layer."""
