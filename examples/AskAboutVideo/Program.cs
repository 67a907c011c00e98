// The library API in a dozen lines: load a checkpoint once, encode a video once, then chat about it.
//   dotnet run --project examples/AskAboutVideo -- MODEL_DIR VIDEO "question" ["follow-up"...]
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Generation;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: AskAboutVideo MODEL_DIR VIDEO QUESTION [FOLLOW-UP ...]");
    return 2;
}

using var model = SlowFastModel.Load(args[0]);
var video = MediaLoader.LoadVideo(args[1], new VideoOptions { Frames = 16, Size = model.Config.Vision.ImageSize });
var tokens = model.EncodeVideo(video.PixelValues, video.FrameCount);
Console.Error.WriteLine($"{video.FrameCount} frames -> {tokens.FastCount} fast + {tokens.SlowCount} slow tokens");

var chat = model.StartConversation(tokens);
foreach (var question in args[2..])
{
    Console.WriteLine($"> {question}");
    await foreach (var piece in chat.AskStreamingAsync(question, new GenerationOptions { MaxNewTokens = 32 }))
        Console.Write(piece);
    Console.WriteLine();
}
return 0;
