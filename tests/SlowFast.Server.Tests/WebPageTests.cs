using System.Text.Json.Nodes;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace SlowFast.Server.Tests;

/// <summary>A test that needs a Chromium: skipped, saying why, when none is installed (scripts/install-deps.sh --tests installs Debian's).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public static readonly string? Executable = Find();

    public ChromiumFactAttribute()
    {
        if (Executable == null)
            Skip = "no Chromium found ($SLOWFAST_CHROMIUM, /usr/bin/chromium, chromium or chromium-browser on PATH); run scripts/install-deps.sh --tests";
    }

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("SLOWFAST_CHROMIUM") is { Length: > 0 } env && File.Exists(env)) return env;
        if (File.Exists("/usr/bin/chromium")) return "/usr/bin/chromium";
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            foreach (string name in new[] { "chromium", "chromium-browser" })
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }
}

/// <summary>The page at <c>/</c>: served with the server's settings, and driven in a real (headless) Chromium.</summary>
[Collection(ServerCollection.Name)]
public sealed class WebPageTests(ServerFixture f, ITestOutputHelper output)
{
    [Fact]
    public async Task Root_ServesTheSelfContainedPage()
    {
        using var response = await f.Http.GetAsync(f.BaseUrl + "/");
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        string html = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("<!doctype html>", html);
        Assert.DoesNotContain("SLOWFAST_CONFIG", html);
        Assert.Contains($"\"model\":\"{ServerFixture.ModelId}\"", html);
        Assert.Contains("\"maxFrames\":8", html);
        Assert.Contains("\"apiKey\":false", html);
        // Nothing from elsewhere.
        Assert.DoesNotContain("http://", html);
        Assert.DoesNotContain("https://", html);
        Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal(html, await f.Http.GetStringAsync(f.BaseUrl + "/index.html"));
    }

    [Fact]
    public void Render_EscapesTheModelIdInsideTheScript()
    {
        using var backend = new ChatBackend(new ServerOptions { ModelDir = f.ModelDir, ModelId = "</script><script>alert(1)</script>" });
        string html = WebPage.Render(backend);
        Assert.Equal(1, CountOf(html, "</script>"));
        Assert.Contains("\"model\":\"\\u003C/script\\u003E", html);
    }

    private static int CountOf(string s, string part)
    {
        int n = 0;
        for (int i = s.IndexOf(part, StringComparison.Ordinal); i >= 0; i = s.IndexOf(part, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>
    /// Loads the page, picks a video made for this test through the file input, asks two questions with the
    /// keyboard and waits for both answers to stream in; they must equal the server's own greedy answers
    /// to the same conversation, and the second turn must have reused the first one's prefix. While the
    /// first question's video is encoded, the page shows the vision tower's progress (frames done of N);
    /// each answer then shows its token counts and timings.
    /// </summary>
    [ChromiumFact]
    public async Task Browser_UploadsAVideo_AsksTwoQuestions_AndStreamsTheAnswers()
    {
        const int maxTokens = 6;
        // A video of its own, so that no other test has put its encoded tokens in the server's cache.
        string video = Path.Combine(f.Root, "browser.mp4");
        if (!File.Exists(video)) ServerFixture.Ffmpeg("-f", "lavfi", "-i", "testsrc=size=176x144:rate=10", "-t", "1.2", "-pix_fmt", "yuv420p", video);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var (page, problems) = await OpenAsync(browser, f.BaseUrl);
        Assert.Equal(ServerFixture.ModelId, await page.Locator("#model-id").TextContentAsync());

        await page.GetByText("Settings").ClickAsync();
        await page.GetByLabel("Frames sampled from the video").FillAsync(ServerFixture.Frames.ToString());
        await page.GetByLabel("Longest answer (tokens)").FillAsync(maxTokens.ToString());
        await page.GetByLabel("Video or image").SetInputFilesAsync(video);
        // Every text the progress line takes, however briefly (an encoding of 4 tiny frames is quick).
        await page.EvaluateAsync("""
            () => {
              window.progressTexts = [];
              new MutationObserver(records => {
                for (const r of records) for (const n of r.addedNodes)
                  if (n.nodeType === Node.TEXT_NODE && n.parentElement && n.parentElement.closest(".progress")) window.progressTexts.push(n.data);
              }).observe(document.getElementById("log"), { childList: true, subtree: true });
            }
            """);
        // Picking the file puts the focus in the question box.
        await Assertions.Expect(page.GetByLabel("Question")).ToBeFocusedAsync();

        string[] questions = ["What happens in this video?", "And what comes after that?"];
        var answers = page.Locator("#log .msg.assistant");
        for (int i = 0; i < questions.Length; i++)
        {
            await page.GetByLabel("Question").FillAsync(questions[i]);
            await page.GetByLabel("Question").PressAsync("Enter");
            await Assertions.Expect(answers.Nth(i)).ToHaveAttributeAsync("data-state", "done");
        }
        await Assertions.Expect(page.GetByLabel("Question")).ToBeFocusedAsync();

        // The first question's video was encoded frame by frame, and the page said so; the second came from the cache.
        var progressTexts = await page.EvaluateAsync<string[]>("() => window.progressTexts");
        output.WriteLine("progress: " + string.Join(" | ", progressTexts));
        string[] expectedProgress = [.. Enumerable.Range(0, ServerFixture.Frames).Select(k => $"Encoding the video: {k} of {ServerFixture.Frames} frames"),
            $"Encoded all {ServerFixture.Frames} frames; reading the prompt…"];
        Assert.Equal(expectedProgress, progressTexts);
        Assert.Equal($"{ServerFixture.Frames}/{ServerFixture.Frames}", await answers.Nth(0).GetAttributeAsync("data-frames-encoded"));
        Assert.Null(await answers.Nth(1).GetAttributeAsync("data-frames-encoded"));
        Assert.Equal(0, await page.Locator("#log .progress").CountAsync()); // gone once the answer came
        // Then each answer's token counts and timings.
        string usage1 = (await answers.Nth(0).Locator(".usage").TextContentAsync())!, usage2 = (await answers.Nth(1).Locator(".usage").TextContentAsync())!;
        output.WriteLine("usage: " + usage1 + " || " + usage2);
        Assert.Matches($@"^prompt \d+ tokens \(0 reused\) · answer {maxTokens} tokens · video {ServerFixture.Frames} frames \(\d+ fast \+ \d+ slow tokens\): read [\d.]+ s, vision [\d.]+ s · prefill [\d.]+ s · first token after", usage1);
        Assert.Contains($"video {ServerFixture.Frames} frames (", usage2);
        Assert.Contains("from the cache", usage2);
        Assert.Equal(ServerFixture.Frames.ToString(), await answers.Nth(0).GetAttributeAsync("data-frames"));

        // The frame strip (when this Chromium decodes the video) has the frames the server samples.
        await Assertions.Expect(page.Locator("#strip-note")).Not.ToHaveTextAsync("Drawing frames…");
        string stripNote = (await page.Locator("#strip-note").TextContentAsync())!;
        output.WriteLine("frame strip: " + stripNote);
        if (!stripNote.StartsWith("No frame preview", StringComparison.Ordinal))
            Assert.Equal(ServerFixture.Frames, await page.Locator("#strip canvas").CountAsync());

        string screenshot = Path.Combine(AppContext.BaseDirectory, "TestResults", "webpage.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        output.WriteLine("screenshot: " + screenshot);

        var texts = new List<string>();
        for (int i = 0; i < questions.Length; i++) texts.Add((await answers.Nth(i).Locator(".text").TextContentAsync())!);
        int prompt1 = int.Parse((await answers.Nth(0).GetAttributeAsync("data-prompt-tokens"))!);
        int cached2 = int.Parse((await answers.Nth(1).GetAttributeAsync("data-cached-tokens"))!);
        Assert.Equal(maxTokens.ToString(), await answers.Nth(1).GetAttributeAsync("data-completion-tokens"));
        Assert.True(cached2 >= prompt1 - 1, $"second turn reused {cached2} tokens, the first prompt had {prompt1}");
        Assert.Contains("reused", await answers.Nth(1).Locator(".usage").TextContentAsync());

        // The same conversations, asked of the server directly (not streamed).
        var videoPart = ServerFixture.VideoPart(ServerFixture.DataUrl(video, "video/mp4"));
        var history = new JsonArray();
        for (int i = 0; i < questions.Length; i++)
        {
            history.Add(ServerFixture.User(questions[i], i == 0 ? videoPart : null));
            var (status, body) = await f.PostAsync(ServerFixture.Request(history.DeepClone().AsArray(), maxTokens));
            Assert.Equal(200, status);
            string expected = body["choices"]![0]!["message"]!["content"]!.GetValue<string>();
            Assert.Equal(expected, texts[i]);
            if (i == 0) Assert.Equal(prompt1, body["usage"]!["prompt_tokens"]!.GetValue<int>());
            history.Add(new JsonObject { ["role"] = "assistant", ["content"] = expected });
        }
        Assert.Empty(problems);
    }

    /// <summary>
    /// Against a server with an API key: the page opens its settings for the key; a question without the
    /// key shows the server's refusal and stays in the box; with the key it is answered; a file the
    /// server cannot decode shows its error.
    /// </summary>
    [ChromiumFact]
    public async Task Browser_WithAnApiKey_SendsIt_AndShowsErrors()
    {
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", ApiKey = "s3cret", MaxFrames = 8,
            Precision = Tensors.Kernels.MatMulPrecision.Float32,
        });
        await app.StartAsync();
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var (page, problems) = await OpenAsync(browser, app.Urls.First());

        await Assertions.Expect(page.Locator("#settings")).ToHaveAttributeAsync("open", "");
        await page.GetByLabel("Longest answer (tokens)").FillAsync("3");
        var question = page.GetByLabel("Question");
        var answers = page.Locator("#log .msg.assistant");

        await question.FillAsync("Hello?");
        await question.PressAsync("Enter");
        await Assertions.Expect(answers.Nth(0)).ToHaveAttributeAsync("data-state", "error");
        await Assertions.Expect(answers.Nth(0).GetByRole(AriaRole.Alert)).ToContainTextAsync("API key");
        await Assertions.Expect(question).ToHaveValueAsync("Hello?");
        await Assertions.Expect(question).ToBeFocusedAsync();

        await page.GetByLabel("API key").FillAsync("s3cret");
        await question.PressAsync("Enter");
        await Assertions.Expect(answers.Nth(1)).ToHaveAttributeAsync("data-state", "done");
        Assert.Equal("3", await answers.Nth(1).GetAttributeAsync("data-completion-tokens"));

        await page.GetByLabel("Video or image").SetInputFilesAsync(new FilePayload
        {
            Name = "broken.mp4", MimeType = "video/mp4", Buffer = System.Text.Encoding.ASCII.GetBytes("this is not a video"),
        });
        await Assertions.Expect(page.Locator("#log .msg")).ToHaveCountAsync(0); // a new file starts a new chat
        await question.FillAsync("What happens?");
        await question.PressAsync("Enter");
        await Assertions.Expect(answers.Nth(0).GetByRole(AriaRole.Alert)).ToContainTextAsync("could not be decoded");
        // Only the browser's own report of the refused requests (401, 400) may be on the console.
        Assert.All(problems, p => Assert.Contains("Failed to load resource", p));
        await app.StopAsync();
    }

    private static Task<IBrowser> LaunchAsync(IPlaywright playwright) => playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
    {
        ExecutablePath = ChromiumFactAttribute.Executable,
        Headless = true,
        Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });

    /// <summary>A new page at <paramref name="url"/>, and the list its console errors and script errors go to.</summary>
    private static async Task<(IPage Page, List<string> Problems)> OpenAsync(IBrowser browser, string url)
    {
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 860 } });
        var problems = new List<string>();
        page.Console += (_, m) => { if (m.Type == "error") problems.Add("console: " + m.Text); };
        page.PageError += (_, e) => problems.Add("page error: " + e);
        page.SetDefaultTimeout(120_000);
        Assertions.SetDefaultExpectTimeout(120_000);
        await page.GotoAsync(url + "/");
        return (page, problems);
    }
}
