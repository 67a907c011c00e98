using System.IO.Compression;
using System.Xml.Linq;

namespace SlowFast.Packaging.Tests;

[Collection(PackedFeedCollection.Name)]
public sealed class PackageMetadataTests(PackedFeed feed)
{
    private XElement Metadata(string id, out ZipArchive archive)
    {
        string path = Path.Combine(feed.Feed, $"{id}.{feed.Version}.nupkg");
        Assert.True(File.Exists(path), $"{path} was not packed");
        archive = ZipFile.OpenRead(path);
        var nuspec = archive.Entries.Single(e => e.FullName == $"{id}.nuspec");
        using var stream = nuspec.Open();
        var doc = XDocument.Load(stream);
        return doc.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string? Value(XElement metadata, string name) =>
        metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

    private static XElement? Element(XElement metadata, string name) =>
        metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name);

    [Fact]
    public void The_feed_holds_exactly_the_documented_packages_with_symbols()
    {
        var packed = Directory.GetFiles(feed.Feed, "*.nupkg").Select(Path.GetFileName).Order().ToList();
        Assert.Equal(PackedFeed.PackageIds.Select(id => $"{id}.{feed.Version}.nupkg").Order(), packed);
        foreach (var id in PackedFeed.PackageIds)
            Assert.True(File.Exists(Path.Combine(feed.Feed, $"{id}.{feed.Version}.snupkg")), $"{id} has no symbol package");
    }

    [Theory]
    [MemberData(nameof(Ids))]
    public void Every_package_has_license_readme_repository_and_description(string id)
    {
        var metadata = Metadata(id, out var archive);
        using (archive)
        {
            Assert.Equal(feed.Version, Value(metadata, "version"));
            var license = Element(metadata, "license");
            Assert.NotNull(license);
            Assert.Equal("expression", license!.Attribute("type")?.Value);
            Assert.Equal("MIT", license.Value);

            string? readme = Value(metadata, "readme");
            Assert.False(string.IsNullOrEmpty(readme));
            var readmeEntry = archive.GetEntry(readme!);
            Assert.NotNull(readmeEntry);
            using (var reader = new StreamReader(readmeEntry!.Open()))
                Assert.Contains("SlowFast.Extensions.AI", reader.ReadToEnd());

            var repository = Element(metadata, "repository");
            Assert.NotNull(repository);
            Assert.StartsWith("https://", repository!.Attribute("url")?.Value);
            Assert.Equal("git", repository.Attribute("type")?.Value);
            Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");

            Assert.True((Value(metadata, "description") ?? "").Length > 40, $"{id}: description missing or too short");
            Assert.Equal("SlowFast.NET contributors", Value(metadata, "authors"));
        }
    }

    [Theory]
    [MemberData(nameof(LibraryIds))]
    public void Libraries_carry_their_assembly_and_its_xml_docs(string id)
    {
        Metadata(id, out var archive);
        using (archive)
        {
            var names = archive.Entries.Select(e => e.FullName).ToList();
            Assert.Contains($"lib/net10.0/{id}.dll", names);
            Assert.Contains($"lib/net10.0/{id}.xml", names);
        }
    }

    [Fact]
    public void Media_states_the_ffmpeg_requirement()
    {
        var metadata = Metadata("SlowFast.Media", out var archive);
        using (archive)
            Assert.Contains("ffmpeg", Value(metadata, "description"));
    }

    [Fact]
    public void One_package_brings_the_rest_the_chat_client_needs()
    {
        // Extensions.AI -> Model -> Media, Tensors -> Core: a user adds only SlowFast.Extensions.AI.
        var closure = new HashSet<string>();
        var pending = new Stack<string>(["SlowFast.Extensions.AI"]);
        while (pending.Count > 0)
        {
            string id = pending.Pop();
            if (!closure.Add(id)) continue;
            var metadata = Metadata(id, out var archive);
            using (archive)
                foreach (var dep in metadata.Descendants().Where(e => e.Name.LocalName == "dependency"))
                {
                    string depId = dep.Attribute("id")!.Value;
                    if (depId.StartsWith("SlowFast.", StringComparison.Ordinal))
                    {
                        Assert.Equal(feed.Version, dep.Attribute("version")?.Value);
                        pending.Push(depId);
                    }
                }
        }
        Assert.Superset(new HashSet<string> { "SlowFast.Model", "SlowFast.Media", "SlowFast.Tensors", "SlowFast.Core" }, closure);
    }

    [Fact]
    public void The_cli_package_is_a_dotnet_tool_named_slowfast()
    {
        var metadata = Metadata("SlowFast.Cli", out var archive);
        using (archive)
        {
            Assert.Contains(metadata.Descendants(), e => e.Name.LocalName == "packageType" && e.Attribute("name")?.Value == "DotnetTool");
            var settings = archive.Entries.Single(e => e.FullName.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal));
            using var stream = settings.Open();
            var command = XDocument.Load(stream).Descendants().Single(e => e.Name.LocalName == "Command");
            Assert.Equal("slowfast", command.Attribute("Name")?.Value);
        }
    }

    public static TheoryData<string> Ids => new(PackedFeed.PackageIds);
    public static TheoryData<string> LibraryIds => new(PackedFeed.PackageIds.Where(id => id != "SlowFast.Cli"));
}
