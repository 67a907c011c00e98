using System.Text;
using System.Text.Json;

namespace SlowFast.Hub.Tests;

/// <summary>A few-KB fake model repository: config, tokenizer stubs, two safetensors shards and their index, plus files a pull must skip.</summary>
public static class TinyCheckpoint
{
    public const string Shard1 = "model-00001-of-00002.safetensors";
    public const string Shard2 = "model-00002-of-00002.safetensors";

    /// <summary>The files a pull must fetch.</summary>
    public static readonly string[] Needed =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "model.safetensors.index.json", Shard1, Shard2,
    ];

    /// <summary>Files in the repository that a pull must not fetch.</summary>
    public static readonly string[] Skipped = ["README.md", ".gitattributes", "pytorch_model.bin", "model-unused.safetensors"];

    public static FakeRepo Create(string id, string? token = null, int seed = 1)
    {
        var repo = new FakeRepo { Id = id, RequiredToken = token };
        var rng = new Random(seed);
        repo.Files["config.json"] = Utf8("""{"architectures":["LlavaQwenSlowFastForCausalLM"],"hidden_size":8,"num_hidden_layers":1}""");
        repo.Files["generation_config.json"] = Utf8("""{"max_new_tokens":16}""");
        repo.Files["tokenizer.json"] = Utf8("""{"version":"1.0","model":{"type":"BPE","vocab":{"a":0},"merges":[]}}""");
        repo.Files["tokenizer_config.json"] = Utf8("""{"model_max_length":32768}""");
        repo.Files["README.md"] = Utf8("# tiny\n");
        repo.Files[".gitattributes"] = Utf8("*.safetensors filter=lfs diff=lfs merge=lfs -text\n");
        repo.Files[Shard1] = Safetensors("a", 6000, rng);
        repo.Files[Shard2] = Safetensors("b", 5000, rng);
        repo.Files["model-unused.safetensors"] = Safetensors("c", 100, rng);
        repo.Files["pytorch_model.bin"] = Bytes(20_000, rng);
        repo.Files["model.safetensors.index.json"] = Utf8(JsonSerializer.Serialize(new
        {
            metadata = new { total_size = 44000 },
            weight_map = new Dictionary<string, string> { ["a"] = Shard1, ["a2"] = Shard1, ["b"] = Shard2 },
        }));
        foreach (var f in new[] { Shard1, Shard2, "model-unused.safetensors", "pytorch_model.bin" }) repo.LfsFiles.Add(f);
        return repo;
    }

    static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    static byte[] Bytes(int n, Random rng)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    /// <summary>A valid safetensors file holding one F32 vector of random values.</summary>
    static byte[] Safetensors(string name, int floats, Random rng)
    {
        string header = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            [name] = new { dtype = "F32", shape = new[] { floats }, data_offsets = new[] { 0, floats * 4 } },
        });
        while (header.Length % 8 != 0) header += " ";
        var data = new byte[8 + header.Length + floats * 4];
        BitConverter.TryWriteBytes(data.AsSpan(0, 8), (long)header.Length);
        Encoding.ASCII.GetBytes(header).CopyTo(data, 8);
        for (int i = 0; i < floats; i++) BitConverter.TryWriteBytes(data.AsSpan(8 + header.Length + i * 4), (float)rng.NextDouble());
        return data;
    }
}
