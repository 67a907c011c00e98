using System.Text;
using SlowFast.Media;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Fuzz;

/// <summary>
/// Binary seed inputs made by the project's own writers (`SlowFast.Fuzz make-seeds` writes them into
/// fuzz/corpus; the JSON and text seeds there are hand-written).
/// </summary>
public static class Seeds
{
    /// <summary>A valid safetensors file: one F32 [2, 2] tensor "a" and one BF16 [3] tensor "b", with metadata.</summary>
    public static byte[] TinySafetensors()
    {
        string path = Path.Combine(Scratch.Dir, "seed.safetensors");
        SafetensorsWriter.Write(path,
        [
            (new TensorSpec("a", DType.F32, [2, 2]), new byte[16]),
            (new TensorSpec("b", DType.BF16, [3]), new byte[6]),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        return File.ReadAllBytes(path);
    }

    /// <summary>A valid pixels file of <paramref name="frames"/> frames at <paramref name="size"/> px.</summary>
    public static byte[] Pixels(int frames, int size)
    {
        var input = new VideoInput
        {
            PixelValues = Enumerable.Range(0, frames * 3 * size * size).Select(i => (i % 7) * 0.25f - 0.75f).ToArray(),
            FrameCount = frames,
            Size = size,
            FrameIndices = Enumerable.Range(0, frames).Select(i => (long)i * 3).ToArray(),
            Timestamps = Enumerable.Range(0, frames).Select(i => i * 0.125).ToArray(),
            TotalFrames = frames * 3,
            FrameRate = 24,
            Duration = frames * 0.125,
            SourcePath = "clip.mp4",
            SamplingName = "uniform",
            Aspect = AspectMode.Pad,
            TimeInstruction = "The video lasts for 1.00 seconds.",
        };
        string path = Path.Combine(Scratch.Dir, "seed.pixels.safetensors");
        PixelsFile.Write(path, input);
        return File.ReadAllBytes(path);
    }

    /// <summary>Writes the binary seeds into <paramref name="corpusRoot"/>/TARGET/.</summary>
    public static void WriteAll(string corpusRoot)
    {
        void Put(string target, string name, byte[] bytes)
        {
            string dir = Path.Combine(corpusRoot, target);
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, name), bytes);
            Console.WriteLine($"{target}/{name} ({bytes.Length} bytes)");
        }
        byte[] tiny = TinySafetensors();
        Put("safetensors", "tiny.safetensors", tiny);
        byte[] truncated = tiny[..^3];
        Put("safetensors", "truncated.safetensors", truncated);
        Put("safetensors", "empty-header.safetensors", [.. BitConverter.GetBytes(2L), .. "{}"u8]);
        Put("safetensors", "index.json", Encoding.UTF8.GetBytes(
            """{"metadata": {"total_size": 22}, "weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}}"""));
        Put("pixels", "two-frames.safetensors", Pixels(2, 4));
        Put("pixels", "one-frame.safetensors", Pixels(1, 2));
    }
}
