"""llmcourse: the tested building blocks of the course's notebooks.

One concept, one module (and one notebook):

========================  ===========================================================
``llmcourse.config``      device, seed, quick mode, data folder (every notebook)
``llmcourse.text``        torchtext-style tokenizer and ``Vocab`` (notebook 00)
``llmcourse.data``        WikiText-2 and SST-2 by name, verified; LM batching (00, 02)
``llmcourse.hub``         the one way to the Hugging Face Hub: address, offline switches, reachability
``llmcourse.files``       files written whole or not at all, and sealed with their sha256 where loaded again
``llmcourse.checks``      the checks of arguments every public entry point shares: one message per mistake
``llmcourse.protocols``   what the loop, decoding and the counts may ask of a model, stated once
``llmcourse.lm``          chain rule, perplexity, a bigram neural LM (notebook 00)
``llmcourse.ngram``       n-gram LMs from counts to modified Kneser-Ney (notebook 01)
``llmcourse.rnn``         recurrent networks and the LSTM language model (notebook 02)
``llmcourse.decoding``    greedy, temperature, top-k and top-p generation (02, 04)
``llmcourse.attention``   attention, masks, multi-head attention (03, 04, 05)
``llmcourse.seq2seq``     the synthetic encoder–decoder task of notebook 03
``llmcourse.attribution`` occlusion and gradient×input against attention weights (03)
``llmcourse.transformer`` a GPT-style Transformer LM, Llama's options, a KV cache (04, 06)
``llmcourse.interop``     the Transformer into transformers' GPT-2 and Llama and back (04, 06)
``llmcourse.bpe``         byte-pair encoding from scratch, equal to ``tokenizers`` (notebook 06)
``llmcourse.bytebpe``     byte-level BPE as GPT-2 and Llama 3 use it, equal to ``tokenizers``
``llmcourse.weights``     which pretrained weights to load, from where, and loading them (MiniLM, the Hub, a folder)
``llmcourse.bert``        BERT from scratch: masked-LM pre-training and an encoder equal to BertModel (05)
``llmcourse.finetune``    SST-2 with a pretrained encoder: Trainer fine-tuning, predictions, linear probe (05)
``llmcourse.probes``      a bias probe of a sentence classifier on templated sentences (05)
``llmcourse.optim``       Adam and AdamW from their update rule (notebook 00)
``llmcourse.heads``       the output layer both LMs share: full or adaptive softmax (02, 04)
``llmcourse.training``    the one training loop (steps or a time budget), perplexity
``llmcourse.checkpoints`` weights as safetensors and config as JSON, loaded back without pickle
``llmcourse.ddp``         what the loop does differently as one of several processes (DDP)
``llmcourse.resume``      the whole training state, saved and resumed after a disconnect (train)
``llmcourse.precision``   bf16 / fp16 / fp32 and torch.compile by the device (04)
``llmcourse.results``     the results and compute tables across notebooks; reference rows where one is missing
``llmcourse.recipes``     one recipe shape for the LSTM, the Transformer and BERT (02, 04, 05)
``llmcourse.budget``      the race's clock sized to the machine: measured rates, tokens needed (02, 04, 06)
``llmcourse.plotting``    training curves, the race, Zipf plots, attention heatmaps
``llmcourse.widgets``     the interactive explorers (ipywidgets)
``llmcourse.cost``        timing harnesses (03); a model's training FLOPs counted on one step (05)
``llmcourse.scaling``     a sweep of sizes and budgets, fitted power laws, a probe (07)
``llmcourse.privacy``     planted canaries, their exposure and their extraction (The Secret Sharer)
``llmcourse.lora``        LoRA from its formula and with peft, against full fine-tuning (07)
``llmcourse.pretrained``  a pretrained GPT-2 where the network allows, scored per word (07)
``llmcourse.distributed`` the one training loop on several processes (torchrun, DDP) (07)
``llmcourse.exercises``   exercises with checkers, one module per notebook
========================  ===========================================================
"""

__version__ = "0.1.0"
