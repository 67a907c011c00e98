using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace SlowFast.Server;

/// <summary>
/// OpenAI's files API, for media: <c>POST /v1/files</c> (multipart/form-data, the bytes in the field
/// <c>file</c>, <c>purpose</c> optional) stores a file and answers its file object; a <c>video_url</c> or
/// <c>image_url</c> then names it by id. <c>GET /v1/files</c> lists them, <c>GET /v1/files/{id}</c> shows one,
/// <c>DELETE /v1/files/{id}</c> removes one. An upload larger than the server's upload limit is a 413.
/// </summary>
public static class FileEndpoints
{
    public static void Map(WebApplication app, ChatBackend backend)
    {
        app.MapPost("/v1/files", (HttpContext ctx) => UploadAsync(ctx, backend));
        app.MapGet("/v1/files", () => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(backend.Files.All.Select(f => (JsonNode)f.ToJson()).ToArray()),
        }));
        app.MapGet("/v1/files/{id}", (string id) => Results.Json(Find(backend, id).ToJson()));
        app.MapDelete("/v1/files/{id}", (string id) =>
        {
            Find(backend, id);
            backend.Files.Delete(id);
            return Results.Json(new JsonObject { ["id"] = id, ["object"] = "file", ["deleted"] = true });
        });
    }

    private static UploadedFile Find(ChatBackend backend, string id) => backend.Files.TryGet(id, out var file)
        ? file : throw new ApiError(404, $"no uploaded file '{id}' on this server", "file_id", "file_not_found");

    private static async Task UploadAsync(HttpContext ctx, ChatBackend backend)
    {
        if (!ctx.Request.HasFormContentType || !(ctx.Request.ContentType ?? "").StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest("upload a file as multipart/form-data with the field 'file'", "file", "invalid_content_type");
        long limit = backend.Options.MaxUploadBytes;
        IFormCollection form;
        try
        {
            form = await ctx.Request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = limit }, ctx.RequestAborted);
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            throw TooLarge(limit);
        }
        catch (InvalidDataException e)
        {
            throw ApiError.BadRequest($"malformed multipart/form-data ({e.Message})", "file", "invalid_multipart");
        }
        var file = form.Files.GetFile("file") ?? throw ApiError.BadRequest("'file' is required (the form field holding the bytes)", "file", "missing_required_parameter");
        if (file.Length == 0) throw ApiError.BadRequest("the uploaded file is empty", "file", "invalid_media");
        if (file.Length > limit) throw TooLarge(limit);
        string? purpose = form.TryGetValue("purpose", out var p) && p.Count > 0 && !string.IsNullOrEmpty(p[0]) ? p[0] : null;
        await using var content = file.OpenReadStream();
        var saved = await backend.Files.SaveAsync(content, file.FileName, purpose, ctx.RequestAborted);
        backend.Options.Log?.Invoke($"files: {saved.Id} ({saved.Bytes} bytes) uploaded");
        await ServerEndpoints.WriteJson(ctx, 200, saved.ToJson());
    }

    private static ApiError TooLarge(long limit) =>
        new(413, $"the upload is larger than this server takes ({limit} bytes)", "file", "request_too_large");
}
