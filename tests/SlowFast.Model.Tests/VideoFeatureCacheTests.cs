using System.Text.Json.Nodes;
using SlowFast.Media;
using SlowFast.Model.Caching;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Tests;

/// <summary>
/// The encoded-video cache: keys that tell apart everything the tokens depend on, bit-identical hits,
/// files that are never trusted, concurrent writers, and the memory and disk bounds.
/// </summary>
public sealed class VideoFeatureCacheTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("sf-feature-cache-").FullName;
    private string CacheDir => Path.Combine(_root, "features");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Tokens of the tiny preset's plan for <paramref name="frames"/> frames, filled with seeded values.</summary>
    private static VisualTokens Tokens(int frames, int seed)
    {
        var config = Presets.Tiny();
        var plan = VisualTokenPlan.For(config, frames);
        int hidden = config.HiddenSize;
        return new VisualTokens
        {
            Fast = TestData.Normal(plan.FastTokens * hidden, seed), FastCount = plan.FastTokens,
            Slow = TestData.Normal(plan.SlowTokens * hidden, seed + 1), SlowCount = plan.SlowTokens,
            Hidden = hidden, IsVideo = frames > 1, Plan = plan,
        };
    }

    private string MediaFile(string name, byte[] content)
    {
        string path = Path.Combine(_root, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    /// <summary>A key for an arbitrary file (it is only hashed, never decoded).</summary>
    private VideoFeatureKey Key(string media = "a", int frames = 8, string checkpoint = "ck", MatMulPrecision precision = MatMulPrecision.Float32)
    {
        var processor = new SlowFastProcessor(Presets.Tiny());
        string path = MediaFile(media + ".mp4", System.Text.Encoding.UTF8.GetBytes("bytes of " + media));
        return VideoFeatureKey.For(processor.MediaKey(processor.Video(path, frames)), checkpoint, precision);
    }

    private static void AssertSameTokens(VisualTokens expected, VisualTokens actual)
    {
        Assert.Equal(expected.FastCount, actual.FastCount);
        Assert.Equal(expected.SlowCount, actual.SlowCount);
        Assert.Equal(expected.Hidden, actual.Hidden);
        Assert.Equal(expected.IsVideo, actual.IsVideo);
        Assert.Equal(expected.Plan, actual.Plan);
        // Bit for bit: compare the raw bits, so -0 against 0 or two NaNs would still be told apart.
        Assert.Equal(expected.Fast.AsSpan(0, expected.FastCount * expected.Hidden).ToArray().Select(BitConverter.SingleToInt32Bits),
            actual.Fast.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(expected.Slow.AsSpan(0, expected.SlowCount * expected.Hidden).ToArray().Select(BitConverter.SingleToInt32Bits),
            actual.Slow.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void A_put_is_found_again_in_memory_and_from_disk_by_a_new_cache_bit_for_bit()
    {
        var key = Key();
        var tokens = Tokens(8, 1);
        var cache = new VideoFeatureCache(CacheDir);
        Assert.False(cache.TryGet(key, out _));
        Assert.True(cache.Put(key, tokens));
        Assert.True(File.Exists(cache.PathFor(key)));

        var (inMemory, source) = cache.Lookup(key);
        Assert.Equal(CacheSource.Memory, source);
        AssertSameTokens(tokens, inMemory!);

        var other = new VideoFeatureCache(CacheDir);   // another process, in effect
        (var fromDisk, source) = other.Lookup(key);
        Assert.Equal(CacheSource.Disk, source);
        AssertSameTokens(tokens, fromDisk!);
        Assert.Equal(CacheSource.Memory, other.Lookup(key).Source);

        using var file = SafetensorsFile.Open(cache.PathFor(key)!);
        Assert.Equal(key.Digest, file.Metadata["key"]);
        Assert.Equal(key.Text, file.Metadata["key_text"]);
        Assert.Equal(VideoFeatureKey.Format, file.Metadata["format"]);
        Assert.Equal([tokens.SlowCount, tokens.Hidden], file.Get("slow").Shape.ToArray());
    }

    [Fact]
    public void Real_encoded_tokens_of_an_image_and_a_video_come_back_bit_for_bit()
    {
        using var model = SlowFastModel.Load(TinyCheckpoints.Get(3));
        var cache = new VideoFeatureCache(CacheDir);
        foreach (int frames in new[] { 1, 5 })
        {
            var tokens = model.EncodeVideo(TestData.Normal(frames * 3 * 128 * 128, 10 + frames), frames);
            var key = Key("real" + frames, frames);
            cache.Put(key, tokens);
            Assert.True(new VideoFeatureCache(CacheDir).TryGet(key, out var back));
            AssertSameTokens(tokens, back);
        }
    }

    [Fact]
    public void Every_input_of_the_key_changes_it()
    {
        var baseline = Key();
        Assert.Equal(baseline, Key());                                     // the same inputs: the same key
        Assert.NotEqual(baseline.Digest, Key(frames: 9).Digest);
        Assert.NotEqual(baseline.Digest, Key(media: "b").Digest);          // other file contents
        Assert.NotEqual(baseline.Digest, Key(checkpoint: "other").Digest);
        var bf16 = Key(precision: MatMulPrecision.BFloat16);
        // The arithmetic really used: without AVX512-BF16 a bf16 request computes float32, the same tokens.
        Assert.Equal(MatMul.BFloat16Supported, baseline.Digest != bf16.Digest);
        // The tower's MLPs in int8 (as it runs here: nothing changes without AVX512-VNNI); off leaves the key as it was.
        var processor0 = new SlowFastProcessor(Presets.Tiny());
        var media0 = processor0.MediaKey(processor0.Video(MediaFile("a.mp4", System.Text.Encoding.UTF8.GetBytes("bytes of a")), 8));
        Assert.Equal(baseline, VideoFeatureKey.For(media0, "ck", MatMulPrecision.Float32, visionInt8: false));
        Assert.Equal(MatMul.Int8ChannelsSupported, baseline.Digest != VideoFeatureKey.For(media0, "ck", MatMulPrecision.Float32, visionInt8: true).Digest);

        // Same name, other contents: the file's hash, not its name, is in the key.
        var processor = new SlowFastProcessor(Presets.Tiny());
        string path = MediaFile("same-name.mp4", [1, 2, 3]);
        var first = processor.MediaKey(processor.Video(path, 8));
        File.WriteAllBytes(path, [1, 2, 4]);
        Assert.NotEqual(first, processor.MediaKey(processor.Video(path, 8)));
        // Sampling options and an image's aspect are part of it too.
        Assert.NotEqual(first.Text, processor.MediaKey(processor.Video(path, options: processor.VideoOptionsFor(8) with { Sampling = SamplingMode.Fps })).Text);
        Assert.NotEqual(first.Text, processor.MediaKey(processor.Video(path, options: processor.VideoOptionsFor(8) with { Start = 1 })).Text);
        var square = new SlowFastProcessor(Presets.Tiny().Also(c => c.ImageAspectRatio = "square"));
        Assert.NotEqual(processor.MediaKey(processor.Image(path)).Text, square.MediaKey(square.Image(path)).Text);
        Assert.NotEqual(processor.MediaKey(processor.Video(path, 8)).Text, square.MediaKey(square.Video(path, 8)).Text); // a still image given as a video

        // Every miss really is a miss in a cache holding the baseline.
        var cache = new VideoFeatureCache(CacheDir);
        cache.Put(baseline, Tokens(8, 1));
        foreach (var other in new[] { Key(frames: 9), Key(media: "b"), Key(checkpoint: "other") })
            Assert.False(new VideoFeatureCache(CacheDir).TryGet(other, out _));
    }

    [Fact]
    public void Checkpoint_fingerprint_tells_seeds_apart_and_ignores_where_the_checkpoint_is()
    {
        string a = TinyCheckpoints.Get(1), b = TinyCheckpoints.Get(2);
        string fa = CheckpointFingerprint.Of(a);
        Assert.Equal(fa, CheckpointFingerprint.Of(a));
        Assert.NotEqual(fa, CheckpointFingerprint.Of(b));   // same shapes, other random weights

        string copy = Path.Combine(_root, "copy");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(a)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        Assert.Equal(fa, CheckpointFingerprint.Of(copy));

        // One changed byte in the last element of a vision tensor (always sampled) changes it; a change in
        // the language model, which the visual tokens do not depend on, does not.
        string shard = Directory.GetFiles(copy, "*.safetensors").Single();
        long visionEnd, llmEnd;
        using (var file = SafetensorsFile.Open(shard))
        {
            var header = 8 + (long)BitConverter.ToUInt64(File.ReadAllBytes(shard).AsSpan(0, 8));
            visionEnd = header + file.Entries.First(e => e.Name.StartsWith(CheckpointLayout.VisionPrefix, StringComparison.Ordinal)).End - 1;
            llmEnd = header + file.Entries.First(e => e.Name == "model.norm.weight").End - 1;
        }
        void Flip(long offset)
        {
            using var s = new FileStream(shard, FileMode.Open, FileAccess.ReadWrite);
            s.Position = offset;
            int v = s.ReadByte();
            s.Position = offset;
            s.WriteByte((byte)(v ^ 0x01));
        }
        Flip(llmEnd);
        Assert.Equal(fa, CheckpointFingerprint.Of(copy));
        Flip(visionEnd);
        Assert.NotEqual(fa, CheckpointFingerprint.Of(copy));

        // A config change is a different checkpoint.
        string config = Path.Combine(copy, "config.json");
        var o = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        o["mm_video_pooling_stride"] = 1;
        File.WriteAllText(config, o.ToJsonString());
        Assert.NotEqual(CheckpointFingerprint.Of(b), CheckpointFingerprint.Of(copy));
    }

    public static TheoryData<string> Corruptions() => new("truncated", "garbage", "empty", "foreign key", "wrong shapes", "flipped data bit", "bad header");

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void A_corrupt_or_foreign_file_is_a_miss_and_is_rewritten(string corruption)
    {
        var key = Key();
        var tokens = Tokens(8, 1);
        var writer = new VideoFeatureCache(CacheDir);
        writer.Put(key, tokens);
        string path = writer.PathFor(key)!;
        byte[] good = File.ReadAllBytes(path);
        switch (corruption)
        {
            case "truncated": File.WriteAllBytes(path, good[..(good.Length - 100)]); break;
            case "garbage": File.WriteAllBytes(path, Enumerable.Range(0, 5000).Select(i => (byte)(i * 37 % 251)).ToArray()); break;
            case "empty": File.WriteAllBytes(path, []); break;
            case "bad header": File.WriteAllBytes(path, good.Select((b, i) => i is >= 8 and < 24 ? (byte)'#' : b).ToArray()); break;
            case "flipped data bit": good[^5] ^= 0x10; File.WriteAllBytes(path, good); break;
            case "foreign key":
                var other = Key(media: "other");
                writer.Put(other, Tokens(8, 1));               // the same shapes, another key
                File.Copy(writer.PathFor(other)!, path, overwrite: true);
                break;
            case "wrong shapes":
                // The right key and a self-consistent checksum, but tensors that disagree with the recorded plan.
                Dictionary<string, string> meta;
                byte[] fast, slow;
                using (var f = SafetensorsFile.Open(path))
                {
                    meta = f.Metadata.ToDictionary();
                    fast = f.Get("fast").Bytes.ToArray();
                    slow = f.Get("slow").Bytes.ToArray();
                }
                meta["slow_count"] = (tokens.SlowCount - 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
                SafetensorsWriter.Write(path, [
                    (new TensorSpec("fast", DType.F32, [tokens.FastCount, tokens.Hidden]), fast),
                    (new TensorSpec("slow", DType.F32, [tokens.SlowCount - 1, tokens.Hidden]), slow[..^(tokens.Hidden * 4)])], meta);
                break;
        }

        var reader = new VideoFeatureCache(CacheDir);
        var warnings = new List<string>();
        reader.Warning = warnings.Add;
        Assert.False(reader.TryGet(key, out _));
        Assert.Contains(warnings, w => w.Contains("ignored", StringComparison.Ordinal) && w.Contains(key.Digest, StringComparison.Ordinal));

        Assert.True(reader.Put(key, tokens));                    // rewritten
        Assert.True(new VideoFeatureCache(CacheDir).TryGet(key, out var back));
        AssertSameTokens(tokens, back);
    }

    [Fact]
    public void Two_writers_of_one_key_both_succeed_and_leave_a_valid_file()
    {
        var key = Key();
        var tokens = Tokens(16, 1);
        for (int round = 0; round < 10; round++)
        {
            using var start = new Barrier(2);
            var writers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                var cache = new VideoFeatureCache(CacheDir);
                start.SignalAndWait();
                return cache.Put(key, tokens);
            })).ToArray();
            Assert.All(Task.WhenAll(writers).Result, Assert.True);
            Assert.True(new VideoFeatureCache(CacheDir).TryGet(key, out var back));
            AssertSameTokens(tokens, back);
        }
        Assert.Equal([key.Digest + ".safetensors"], Directory.GetFiles(CacheDir).Select(Path.GetFileName)); // no temporary files left
    }

    [Fact]
    public void Memory_keeps_the_most_recently_used_entries_within_its_byte_bound()
    {
        var tokens = Tokens(8, 1);
        long entry = ((long)tokens.Fast.Length + tokens.Slow.Length) * sizeof(float);
        var cache = new VideoFeatureCache(directory: null, maxMemoryBytes: 2 * entry);
        VideoFeatureKey a = Key("a"), b = Key("b"), c = Key("c");
        cache.Put(a, tokens);
        cache.Put(b, Tokens(8, 2));
        Assert.True(cache.TryGet(a, out _));                   // a is now the most recent: b goes first
        cache.Put(c, Tokens(8, 3));
        Assert.Equal(2 * entry, cache.MemoryBytes);
        Assert.True(cache.TryGet(a, out _));
        Assert.False(cache.TryGet(b, out _));
        Assert.True(cache.TryGet(c, out _));

        var small = new VideoFeatureCache(directory: null, maxMemoryBytes: entry - 1);
        small.Put(a, tokens);                                  // larger than the bound: not kept
        Assert.False(small.TryGet(a, out _));
        Assert.Equal(0, small.MemoryBytes);
    }

    [Fact]
    public void Disk_keeps_the_most_recently_used_files_within_its_byte_bound()
    {
        var tokens = Tokens(8, 1);
        var probe = new VideoFeatureCache(Path.Combine(_root, "probe"));
        probe.Put(Key("size"), tokens);
        long fileBytes = new FileInfo(probe.PathFor(Key("size"))!).Length;

        var cache = new VideoFeatureCache(CacheDir, maxMemoryBytes: 0, maxDiskBytes: 2 * fileBytes + fileBytes / 2);
        VideoFeatureKey a = Key("a"), b = Key("b"), c = Key("c");
        cache.Put(a, tokens);
        File.SetLastWriteTimeUtc(cache.PathFor(a)!, DateTime.UtcNow.AddMinutes(-10));
        cache.Put(b, tokens);
        File.SetLastWriteTimeUtc(cache.PathFor(b)!, DateTime.UtcNow.AddMinutes(-5));
        Assert.True(cache.TryGet(a, out _));                   // a hit makes a the most recently used file
        cache.Put(c, tokens);
        Assert.True(File.Exists(cache.PathFor(a)));
        Assert.False(File.Exists(cache.PathFor(b)));
        Assert.True(File.Exists(cache.PathFor(c)));
    }

    [Fact]
    public void An_unwritable_directory_is_reported_and_the_tokens_stay_in_memory()
    {
        string blocker = Path.Combine(_root, "a-file");
        File.WriteAllText(blocker, "not a directory");
        var cache = new VideoFeatureCache(Path.Combine(blocker, "features"));
        var warnings = new List<string>();
        cache.Warning = warnings.Add;
        Assert.False(cache.Put(Key(), Tokens(8, 1)));
        Assert.Single(warnings);
        Assert.True(cache.TryGet(Key(), out _));
    }

    [Fact]
    public void Default_directory_follows_the_environment()
    {
        string? own = Environment.GetEnvironmentVariable(VideoFeatureCache.DirectoryVariable);
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        try
        {
            Environment.SetEnvironmentVariable(VideoFeatureCache.DirectoryVariable, null);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", "/somewhere/cache");
            Assert.Equal("/somewhere/cache/slowfast/features", VideoFeatureCache.DefaultDirectory());
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", null);
            Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "slowfast", "features"),
                VideoFeatureCache.DefaultDirectory());
            Environment.SetEnvironmentVariable(VideoFeatureCache.DirectoryVariable, "/tmp/mine");
            Assert.Equal("/tmp/mine", VideoFeatureCache.DefaultDirectory());
        }
        finally
        {
            Environment.SetEnvironmentVariable(VideoFeatureCache.DirectoryVariable, own);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", xdg);
        }
    }
}

/// <summary>The processor: a checkpoint's config decides the media settings.</summary>
public sealed class SlowFastProcessorTests
{
    [Fact]
    public void Settings_come_from_the_config()
    {
        var released = SlowFastProcessor.Released;
        Assert.Equal(576, released.ImageSize);
        Assert.Equal(64, released.DefaultFrames);
        Assert.Equal(AspectMode.Pad, released.ImageAspect);
        Assert.Equal(AspectMode.Crop, released.VideoAspect);

        var config = Presets.Tiny();
        config.MmTrainingVideoFrames = null;
        config.ImageAspectRatio = "square";
        var tiny = new SlowFastProcessor(config);
        Assert.Equal(128, tiny.ImageSize);
        Assert.Equal(SlowFastProcessor.FallbackFrames, tiny.DefaultFrames);
        Assert.Equal(AspectMode.Crop, tiny.ImageAspect);
        var options = tiny.VideoOptionsFor(7);
        Assert.Equal((7, 128, AspectMode.Crop, (AspectMode?)AspectMode.Crop), (options.Frames, options.Size, options.Aspect, options.ImageAspect));
    }

    [Fact]
    public void Missing_files_are_one_line_errors()
    {
        var p = new SlowFastProcessor(Presets.Tiny());
        Assert.Contains("file not found", Assert.Throws<UserError>(() => p.Video("/nonexistent/v.mp4")).Message);
        Assert.Contains("file not found", Assert.Throws<UserError>(() => p.Image("/nonexistent/i.png")).Message);
        Assert.Contains("is a directory", Assert.Throws<UserError>(() => p.Pixels(Path.GetTempPath())).Message);
    }
}

internal static class ConfigTestExtensions
{
    public static SlowFastConfig Also(this SlowFastConfig c, Action<SlowFastConfig> edit)
    {
        edit(c);
        return c;
    }
}
