using SlowFast.Tensors.IO;

namespace SlowFast.Fuzz.Targets;

/// <summary>
/// A safetensors file (8-byte header length, JSON header, tensor table, data) opened and every tensor's
/// first and last byte read through the memory map, so an entry that points outside the file faults here.
/// The same bytes are also read as a sharded checkpoint's model.safetensors.index.json beside one valid shard.
/// </summary>
public sealed class SafetensorsTarget : FuzzTarget
{
    public override string Name => "safetensors";
    public override string Description => "safetensors header and tensor table; model.safetensors.index.json";

    private static readonly Lazy<string> ShardedDir = new(() =>
    {
        string dir = Scratch.Folder("sharded");
        File.WriteAllBytes(Path.Combine(dir, "model-00001-of-00001.safetensors"), Seeds.TinySafetensors());
        return dir;
    });

    public override unsafe void Run(byte[] input)
    {
        try
        {
            string path = Scratch.Write("input.safetensors", input);
            using var file = SafetensorsFile.Open(path);
            long sum = 0;
            foreach (var entry in file.Entries)
            {
                var view = file.View(entry);
                if (entry.ByteLength > 0) sum += view.Data[0] + view.Data[entry.ByteLength - 1];
            }
            GC.KeepAlive(sum);
        }
        catch (Exception e) when (IsRefusal(e)) { }

        // Index mode only for inputs that look like JSON: a binary file is no index, and skipping it keeps executions fast.
        if (input.Length > 0 && input[0] == (byte)'{')
        {
            File.WriteAllBytes(Path.Combine(ShardedDir.Value, "model.safetensors.index.json"), input);
            using var checkpoint = SafetensorsCheckpoint.Open(ShardedDir.Value);
            foreach (var name in checkpoint.Names) checkpoint.Get(name);
        }
    }
}
