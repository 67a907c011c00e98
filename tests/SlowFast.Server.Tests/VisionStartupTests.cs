using SlowFast.Model;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Server.Tests;

/// <summary>
/// The vision tower's one-time work (packing its BF16 matrices for bf16 arithmetic) is done when the
/// server starts, not inside its first video question.
/// </summary>
public sealed class VisionStartupTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("sf-server-vision-").FullName;

    private string Bf16Checkpoint()
    {
        string dir = Path.Combine(_root, "tiny-bf16");
        ModelCreator.Create(SlowFastConfig.WithOverrides(Presets.Get("tiny"), [], "test"),
            new ModelCreator.Options(dir, DType.BF16, 7, ServerFixture.TokenizerJson()));
        return dir;
    }

    [Fact]
    public void TheTowerIsPackedAtStartUp_AndTheFirstVideoPacksNothing()
    {
        string dir = Bf16Checkpoint();
        using (var backend = new ChatBackend(new ServerOptions { ModelDir = dir, Precision = MatMulPrecision.BFloat16 }))
        {
            Assert.Equal(MatMul.BFloat16Supported, backend.VisionPreparation > TimeSpan.Zero);
            Assert.Equal(backend.VisionPreparation, backend.Model.VisionPackingTime);
            var model = backend.Model;
            int frames = 2, floats = 3 * model.Config.Vision.ImageSize * model.Config.Vision.ImageSize;
            var pixels = new float[frames * floats];
            for (int i = 0; i < pixels.Length; i++) pixels[i] = (i % 97) / 48.5f - 1f;
            model.EncodeVideo(pixels, frames);
            Assert.Equal(backend.VisionPreparation, model.VisionPackingTime);   // nothing left for the first video
        }
        // Nothing to do without packing, or in float32 arithmetic.
        using (var lean = new ChatBackend(new ServerOptions { ModelDir = dir, Precision = MatMulPrecision.BFloat16, PackVisionWeights = false }))
            Assert.Equal(TimeSpan.Zero, lean.VisionPreparation);
        using (var f32 = new ChatBackend(new ServerOptions { ModelDir = dir, Precision = MatMulPrecision.Float32 }))
            Assert.Equal(TimeSpan.Zero, f32.VisionPreparation);
    }

    [Fact]
    public void A_server_with_vision_int8_encodes_with_the_int8_tower()
    {
        // --vision-int8 reaches the served model: its tokens are the int8 tower's (held to the reference's
        // golden case in VisionGoldenTests), not the float tower's, and close to them.
        if (!MatMul.Int8ChannelsSupported) return;
        string dir = Bf16Checkpoint();
        using var int8 = new ChatBackend(new ServerOptions { ModelDir = dir, Precision = MatMulPrecision.Float32, VisionInt8 = true });
        using var plain = new ChatBackend(new ServerOptions { ModelDir = dir, Precision = MatMulPrecision.Float32 });
        using var direct = SlowFastModel.Load(dir, engine: new Model.Engine.EngineOptions { DefaultPrecision = MatMulPrecision.Float32, VisionInt8 = true });
        int frames = 2, floats = 3 * direct.Config.Vision.ImageSize * direct.Config.Vision.ImageSize;
        var pixels = new float[frames * floats];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (i % 89) / 44.5f - 1f;
        var served = int8.Model.EncodeVideo(pixels, frames, keepIntermediates: true);
        var expected = direct.EncodeVideo(pixels, frames, keepIntermediates: true);
        var floatTokens = plain.Model.EncodeVideo(pixels, frames, keepIntermediates: true);
        Assert.Equal(expected.Features, served.Features);
        Assert.NotEqual(floatTokens.Features, served.Features);
        double diff = 0, norm = 0;
        for (int i = 0; i < served.Features!.Length; i++) { diff += Math.Pow(served.Features[i] - floatTokens.Features![i], 2); norm += Math.Pow(floatTokens.Features[i], 2); }
        Assert.InRange(Math.Sqrt(diff / norm), 1e-6, 0.05);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
