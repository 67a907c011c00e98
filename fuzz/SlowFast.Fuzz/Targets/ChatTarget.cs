using SlowFast.Server;

namespace SlowFast.Fuzz.Targets;

/// <summary>
/// The body of POST /v1/chat/completions as the server reads it (<see cref="ChatRequest.ReadAsync"/>), then
/// every media part's URL resolved as the server resolves it (<see cref="MediaResolver.Resolve"/>): data: URLs
/// are written below the scratch root, file:// URLs are allowed below a media root there that holds one file
/// and a symbolic link leading out of it. No server is started and nothing goes to the network: http(s)
/// URLs are refused, as on a server without --allow-remote-media.
/// </summary>
public sealed class ChatTarget : FuzzTarget
{
    public override string Name => "chat";
    public override string Description => "chat-completions request body and its media parts (ChatRequest, MediaResolver)";

    private static readonly string[] ServerFolders = [Scratch.Folder("media") + "/", Scratch.Folder("chat-tmp") + "/"];

    private static readonly Lazy<MediaResolver> Resolver = new(() =>
    {
        string media = Scratch.Folder("media");
        File.WriteAllBytes(Path.Combine(media, "clip.mp4"), [0, 0, 0, 0x18, (byte)'f', (byte)'t', (byte)'y', (byte)'p']);
        string outside = Scratch.Folder("outside");
        File.WriteAllBytes(Path.Combine(outside, "secret.txt"), [1]);
        string link = Path.Combine(media, "escape");
        if (!Path.Exists(link)) File.CreateSymbolicLink(link, outside);
        return new MediaResolver(media, Scratch.Folder("chat-tmp"), new UploadedFiles(Scratch.Folder("uploads")));
    });

    /// <summary>The server's refusals: an <see cref="ApiError"/> with a 4xx status (its message goes out inside a JSON body), or a one-line <see cref="UserError"/>.</summary>
    public override bool IsRefusal(Exception e) =>
        e is ApiError { Status: >= 400 and < 500 } || base.IsRefusal(e);

    public override void Run(byte[] input)
    {
        // An odd first byte reads the body as a server started with --images-as-video does.
        bool imagesAsVideo = input.Length > 0 && (input[0] & 1) == 1;
        var request = ChatRequest.ReadAsync(new MemoryStream(input), imagesAsVideo, CancellationToken.None).GetAwaiter().GetResult();
        foreach (var message in request.Messages)
        {
            if (message.Media is not { } media) continue;
            foreach (var part in media.FrameImages ?? [media])
            {
                using var file = Resolver.Value.Resolve(part.Url, part.Param + ".url");
                if (!ServerFolders.Any(folder => file.Path.StartsWith(folder, StringComparison.Ordinal)))
                    throw new InvalidOperationException($"{part.Param}: resolved to {file.Path}, outside the server's folders");
            }
        }
    }
}
