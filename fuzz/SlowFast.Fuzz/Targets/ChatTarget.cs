using SlowFast.Server;

namespace SlowFast.Fuzz.Targets;

/// <summary>
/// The body of POST /v1/chat/completions as the server reads it (<see cref="ChatRequest.ReadAsync"/>), then
/// every media part's URL resolved as the server resolves it (<see cref="MediaResolver.Resolve"/>): data: URLs
/// are written below the scratch root, file:// URLs are allowed below a media root that holds one file and a
/// symbolic link leading out of it. No server is started and nothing goes to the network: http(s)
/// URLs are refused, as on a server without --allow-remote-media.
/// </summary>
public sealed class ChatTarget : FuzzTarget
{
    public override string Name => "chat";
    public override string Description => "chat-completions request body and its media parts (ChatRequest, MediaResolver)";

    /// <summary>
    /// The media root sits at a fixed path, so seeds can name a file that is there (file:///tmp/slowfast-fuzz-media/clip.mp4);
    /// its content never changes, so processes may share it.
    /// </summary>
    private static readonly string MediaRoot = Path.Combine(Path.GetTempPath(), "slowfast-fuzz-media");

    private static readonly Lazy<MediaResolver> Resolver = new(() =>
    {
        Directory.CreateDirectory(MediaRoot);
        string clip = Path.Combine(MediaRoot, "clip.mp4");
        if (!File.Exists(clip)) File.WriteAllBytes(clip, [0, 0, 0, 0x18, (byte)'f', (byte)'t', (byte)'y', (byte)'p']);
        // A link leading out of the root: resolving through it must be refused.
        string link = Path.Combine(MediaRoot, "escape");
        try { if (!Path.Exists(link)) File.CreateSymbolicLink(link, Path.GetTempPath()); }
        catch (IOException) { } // another process made it first
        return new MediaResolver(MediaRoot, Scratch.Folder("chat-tmp"), new UploadedFiles(Scratch.Folder("uploads")));
    });

    /// <summary>Where a resolved media file may be: below the media root, or the server's own temporary folder.</summary>
    private static bool InServerFolders(string path) =>
        path.StartsWith(MediaRoot + "/", StringComparison.Ordinal) || path.StartsWith(Path.Combine(Scratch.Dir, "chat-tmp") + "/", StringComparison.Ordinal);

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
                if (!InServerFolders(file.Path))
                    throw new InvalidOperationException($"{part.Param}: resolved to {file.Path}, outside the server's folders");
            }
        }
    }
}
