// The library API in a dozen lines: load a checkpoint once, encode a video once (or take it from the
// feature cache), then chat about it.
//   dotnet run --project examples/AskAboutVideo -- MODEL_DIR VIDEO "question" ["follow-up"...]
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Generation;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: AskAboutVideo MODEL_DIR VIDEO QUESTION [FOLLOW-UP ...]");
    return 2;
}

using var model = SlowFastModel.Load(args[0]);
var processor = new SlowFastProcessor(model.Config);            // the checkpoint's size, frame count and aspect mode
var input = processor.Video(args[1], frames: 16);
var cache = new VideoFeatureCache(VideoFeatureCache.DefaultDirectory());
var key = VideoFeatureKey.For(model, processor.MediaKey(input)); // file content + options + checkpoint + precision
var tokens = cache.GetOrAdd(key, () =>
{
    var video = processor.Load(input);
    return model.EncodeVideo(video.PixelValues, video.FrameCount);
}, out var source);
Console.Error.WriteLine($"{tokens.Plan.Frames} frames -> {tokens.FastCount} fast + {tokens.SlowCount} slow tokens ({(source == CacheSource.None ? "encoded" : "cached")})");

var chat = model.StartConversation(tokens);
foreach (var question in args[2..])
{
    Console.WriteLine($"> {question}");
    await foreach (var piece in chat.AskStreamingAsync(question, new GenerationOptions { MaxNewTokens = 32 }))
        Console.Write(piece);
    Console.WriteLine();
}
return 0;
