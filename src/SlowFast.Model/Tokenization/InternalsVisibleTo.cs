// The tokenizer's internals (NFC normalizer, pre-tokenizer, BPE) are tested directly.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("SlowFast.Model.Tests")]
