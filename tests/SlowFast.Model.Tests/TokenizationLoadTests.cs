using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>Bad tokenizer files are one-line <see cref="UserError"/>s naming the file.</summary>
public sealed class TokenizationLoadTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("slowfast-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Missing_file()
    {
        string path = Path.Combine(_dir, "absent-tokenizer.json");
        var error = Assert.Throws<UserError>(() => QwenTokenizer.FromFile(path));
        AssertOneLineNaming(error, "absent-tokenizer.json");
    }

    [Theory]
    [InlineData("{\"model\": {\"vocab\": {\"a\": 0}, ")]
    [InlineData("not json at all")]
    [InlineData("")]
    public void Malformed_json(string content)
    {
        string path = Write("broken-tokenizer.json", content);
        var error = Assert.Throws<UserError>(() => QwenTokenizer.FromFile(path));
        AssertOneLineNaming(error, "broken-tokenizer.json");
    }

    [Theory]
    [InlineData("{\"version\": \"1.0\"}", "model")]
    [InlineData("[1, 2, 3]", "object")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece")]
    [InlineData("{\"model\": {\"type\": \"BPE\"}}", "vocab")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}", "tokenizer")]
    public void Wrong_structure(string content, string mentioned)
    {
        string path = Write("odd-tokenizer.json", content);
        var error = Assert.Throws<UserError>(() => QwenTokenizer.FromFile(path));
        AssertOneLineNaming(error, "odd-tokenizer.json");
        Assert.Contains(mentioned, error.Message);
    }

    private string Write(string name, string content)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static void AssertOneLineNaming(UserError error, string fileName)
    {
        Assert.Contains(fileName, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }
}
