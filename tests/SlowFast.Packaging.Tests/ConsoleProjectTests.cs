using System.Text.Json;

namespace SlowFast.Packaging.Tests;

/// <summary>
/// A program written the way a user would write it, in a fresh folder outside the repository, referencing only
/// SlowFast.Extensions.AI from the packed feed (the other SlowFast packages come as its dependencies).
/// </summary>
[Collection(PackedFeedCollection.Name)]
public sealed class ConsoleProjectTests(PackedFeed feed)
{
    private const string Program = """
        using Microsoft.Extensions.AI;
        using SlowFast.Extensions.AI;
        using SlowFast.Model;

        using var model = SlowFastModel.Load(args[0]);
        IChatClient chat = new SlowFastChatClient(model);
        var question = new ChatMessage(ChatRole.User,
            [new DataContent(File.ReadAllBytes(args[1]), "video/mp4"), new TextContent("What happens in this video?")]);
        var options = new ChatOptions { MaxOutputTokens = 6, Temperature = 0 };
        options.AdditionalProperties = new() { ["frames"] = 4 };
        var reply = await chat.GetResponseAsync([question], options);
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { answer = reply.Text, tokens = reply.Usage?.OutputTokenCount }));
        """;

    [Fact]
    public void A_fresh_project_referencing_the_chat_client_package_answers_like_the_tool()
    {
        string project = Path.Combine(feed.Root, "consumer");
        Directory.CreateDirectory(project);
        File.WriteAllText(Path.Combine(project, "consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="SlowFast.Extensions.AI" Version="{feed.Version}" />
              </ItemGroup>
            </Project>
            """);
        // SlowFast.* only from the packed feed; everything else from the usual source.
        File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="packed" value="{feed.Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="packed"><package pattern="SlowFast.*" /></packageSource>
                <packageSource key="nuget.org"><package pattern="*" /></packageSource>
              </packageSourceMapping>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(project, "Program.cs"), Program);

        var run = Run.Checked("dotnet", ["run", "-c", "Release", "--", feed.ModelDir, feed.VideoPath], project, TimeSpan.FromMinutes(6));
        string line = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last();
        using var fromPackage = JsonDocument.Parse(line);
        Assert.True(fromPackage.RootElement.GetProperty("tokens").GetInt64() > 0, run.Stdout);

        // The same question through the installed tool (greedy, same frames and length) gives the same answer.
        var ask = Run.Checked(feed.Slowfast, ["ask", "--model", feed.ModelDir, "--video", feed.VideoPath, "--frames", "4",
            "--max-new-tokens", "6", "--json", "What happens in this video?"], feed.Root, TimeSpan.FromMinutes(3));
        using var fromTool = JsonDocument.Parse(ask.Stdout);
        Assert.Equal(fromTool.RootElement.GetProperty("answer").GetString(), fromPackage.RootElement.GetProperty("answer").GetString());
    }
}
