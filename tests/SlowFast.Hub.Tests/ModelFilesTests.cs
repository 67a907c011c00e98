namespace SlowFast.Hub.Tests;

public class ModelFilesTests
{
    static readonly RepoId Repo = RepoId.Parse("org/model");

    [Fact]
    public void Sharded_repo_selects_config_tokenizer_and_index_and_skips_other_formats()
    {
        string[] files =
        [
            ".gitattributes", "README.md", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json", "model.safetensors.index.json",
            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "pytorch_model.bin", "tf_model.h5",
            "flax_model.msgpack", "trainer_state.json", "training_args.bin",
        ];
        var selected = ModelFiles.SelectFirstPass(Repo, files);
        Assert.Equal(
            ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
             "special_tokens_map.json", "added_tokens.json", "model.safetensors.index.json"], selected);
    }

    [Fact]
    public void Single_file_repo_and_separate_vision_tower_weights()
    {
        var selected = ModelFiles.SelectFirstPass(Repo, ["config.json", "model.safetensors", "convnext-xxl-clip.safetensors", "other.safetensors"]);
        Assert.Equal(["config.json", "model.safetensors", "convnext-xxl-clip.safetensors"], selected);
    }

    [Fact]
    public void Repos_without_config_or_safetensors_are_refused()
    {
        Assert.Contains("no config.json", Assert.Throws<UserError>(() => ModelFiles.SelectFirstPass(Repo, ["model.safetensors"])).Message);
        Assert.Contains("only PyTorch pickle weights", Assert.Throws<UserError>(() => ModelFiles.SelectFirstPass(Repo, ["config.json", "pytorch_model.bin"])).Message);
        Assert.Contains("no model.safetensors", Assert.Throws<UserError>(() => ModelFiles.SelectFirstPass(Repo, ["config.json"])).Message);
    }

    [Fact]
    public void Index_shards_are_read_once_each_and_checked_against_the_repo()
    {
        string dir = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string index = Path.Combine(dir, "model.safetensors.index.json");
            File.WriteAllText(index, """{"metadata":{},"weight_map":{"x":"b.safetensors","y":"a.safetensors","z":"b.safetensors"}}""");
            Assert.Equal(["a.safetensors", "b.safetensors"], ModelFiles.ShardsOf(Repo, index, ["a.safetensors", "b.safetensors"]));
            Assert.Contains("names shard 'b.safetensors'", Assert.Throws<UserError>(() => ModelFiles.ShardsOf(Repo, index, ["a.safetensors"])).Message);

            File.WriteAllText(index, """{"weight_map":{"x":"../../etc/passwd"}}""");
            Assert.Contains("unsafe file name", Assert.Throws<UserError>(() => ModelFiles.ReadIndexShards(index)).Message);
            File.WriteAllText(index, "{not json");
            Assert.Contains("not valid JSON", Assert.Throws<UserError>(() => ModelFiles.ReadIndexShards(index)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Find_missing_lists_each_absent_part_of_a_model_folder()
    {
        string dir = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            Assert.Equal(["config.json", "tokenizer.json", "model.safetensors or model.safetensors.index.json"], ModelFiles.FindMissing(dir));
            File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{}");
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), """{"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}}""");
            File.WriteAllText(Path.Combine(dir, "s1.safetensors"), "");
            Assert.Equal(["s2.safetensors"], ModelFiles.FindMissing(dir));
            File.WriteAllText(Path.Combine(dir, "s2.safetensors"), "");
            Assert.Empty(ModelFiles.FindMissing(dir));
        }
        finally { Directory.Delete(dir, true); }
    }
}
