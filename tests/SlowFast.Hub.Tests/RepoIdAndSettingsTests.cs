namespace SlowFast.Hub.Tests;

public class RepoIdAndSettingsTests
{
    [Theory]
    [InlineData("shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4", "models--shi-labs--slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4")]
    [InlineData("Qwen/Qwen2-7B-Instruct", "models--Qwen--Qwen2-7B-Instruct")]
    [InlineData("gpt2", "models--gpt2")]
    public void Valid_ids_map_to_their_cache_folder(string id, string folder) =>
        Assert.Equal(folder, RepoId.Parse(id).CacheFolderName);

    [Theory]
    [InlineData("")]
    [InlineData("a/b/c")]
    [InlineData("org/na--me")]
    [InlineData("org/../x")]
    [InlineData("org/name.git")]
    [InlineData("org/-name")]
    [InlineData("org/na me")]
    [InlineData("/abs")]
    public void Invalid_ids_are_rejected_with_a_user_error(string id)
    {
        Assert.False(RepoId.TryParse(id, out _));
        var e = Assert.Throws<UserError>(() => RepoId.Parse(id));
        Assert.Contains("not a valid hub model id", e.Message);
    }

    static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void Defaults_follow_huggingface_hub()
    {
        var s = HubSettings.Resolve(environment: Env(("HOME", "/home/u")));
        Assert.Equal("https://huggingface.co", s.Endpoint);
        Assert.Equal("/home/u/.cache/huggingface/hub", s.CacheDirectory);
        Assert.Null(s.Token);
        Assert.False(s.Offline);
    }

    [Fact]
    public void Environment_variables_are_honoured_in_huggingface_hub_order()
    {
        var xdg = HubSettings.Resolve(environment: Env(("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")));
        Assert.Equal("/xdg/huggingface/hub", xdg.CacheDirectory);

        var home = HubSettings.Resolve(environment: Env(("HOME", "/home/u"), ("HF_HOME", "/hf"), ("HF_ENDPOINT", "http://mirror:8080/"),
            ("HF_TOKEN", "hf_x"), ("HF_HUB_OFFLINE", "yes")));
        Assert.Equal("/hf/hub", home.CacheDirectory);
        Assert.Equal("http://mirror:8080", home.Endpoint);
        Assert.Equal("hf_x", home.Token);
        Assert.True(home.Offline);

        var cache = HubSettings.Resolve(environment: Env(("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/cache"), ("HF_HUB_OFFLINE", "0")));
        Assert.Equal("/cache", cache.CacheDirectory);
        Assert.False(cache.Offline);

        var explicitWins = HubSettings.Resolve(endpoint: "http://x", cacheDirectory: "/c", token: "t", offline: true,
            environment: Env(("HF_HUB_CACHE", "/cache"), ("HF_TOKEN", "hf_x"), ("HF_ENDPOINT", "http://y")));
        Assert.Equal(("http://x", "/c", "t", true), (explicitWins.Endpoint, explicitWins.CacheDirectory, explicitWins.Token, explicitWins.Offline));
    }

    [Fact]
    public void The_token_file_of_huggingface_cli_login_is_read()
    {
        string home = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(home);
        try
        {
            File.WriteAllText(Path.Combine(home, "token"), "hf_from_file\n");
            Assert.Equal("hf_from_file", HubSettings.Resolve(environment: Env(("HF_HOME", home))).Token);
        }
        finally { Directory.Delete(home, true); }
    }

    [Fact]
    public void A_non_http_endpoint_is_a_user_error() =>
        Assert.Contains("HF_ENDPOINT", Assert.Throws<UserError>(() => HubSettings.Resolve(environment: Env(("HF_ENDPOINT", "ftp://x")))).Message);
}
